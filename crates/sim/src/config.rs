//! What a simulated instance is: its credentials, release and data volume.

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub days: u32,
    pub events_per_day: u32,
    /// Release family, lower case as in `glide.war` (`tokyo`, `washingtondc`).
    pub release: String,
    pub username: String,
    pub password: String,
    pub client_id: String,
    pub client_secret: String,
    /// The OAuth application's user: the client-credentials grant acts as it.
    /// An integration account, web-service-only, with the admin role.
    pub app_user: String,
    /// People in sys_user besides the service accounts.
    pub people: u32,
    /// The hardening settings the instance holds.
    pub posture: crate::posture::Profile,
    /// OAuth access token lifespan in seconds (ServiceNow's default: 1,800).
    pub access_lifespan: i64,
    /// OAuth refresh token lifespan in seconds (ServiceNow's default: 100 days).
    pub refresh_lifespan: i64,
    /// Accounts like the connector's, `<username>-1` … `<username>-<n>`,
    /// with its password and rights: many connections (an instance and a
    /// user each) to one simulated instance, as the bench's fleet needs.
    pub fleet_accounts: u32,
}

/// Whether `given` names the connector's account (`username`) or one of
/// the `fleet` accounts like it (`<username>-1` … `<username>-<fleet>`).
pub fn is_account(username: &str, fleet: u32, given: &str) -> bool {
    if given == username {
        return true;
    }
    given
        .strip_prefix(username)
        .and_then(|rest| rest.strip_prefix('-'))
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0'))
        .and_then(|n| n.parse::<u32>().ok())
        .is_some_and(|n| (1..=fleet).contains(&n))
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            days: 7,
            events_per_day: 200,
            release: "xanadu".into(),
            username: "svc.connector".into(),
            password: "Sim-Passw0rd!".into(),
            client_id: "9f2c4b1e7a3d4c5e8f6a0b1c2d3e4f50".into(),
            client_secret: "sim-client-secret".into(),
            app_user: "svc.integration".into(),
            posture: crate::posture::Profile::Default,
            people: 300,
            access_lifespan: 1_800,
            refresh_lifespan: 8_640_000,
            fleet_accounts: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fleet_signs_in_as_numbered_accounts_and_nobody_else() {
        use super::is_account;
        assert!(is_account("svc", 0, "svc"));
        assert!(!is_account("svc", 0, "svc-1"));
        assert!(is_account("svc", 200, "svc-1") && is_account("svc", 200, "svc-200"));
        for other in [
            "svc-0", "svc-201", "svc-01", "svc1", "svc-", "svc-x", "svc-+1", "admin",
        ] {
            assert!(!is_account("svc", 200, other), "{other}");
        }
    }
}
