//! `GET /settings`: what the page needs to check fields exactly as the worker
//! does and to say what a connect will do. The worker writes it, the browser
//! module reads it; one type for both.

use serde::{Deserialize, Serialize};

use crate::connect::input::AuthMethod;
use crate::servicenow::instance_url::{HostPolicy, Loopback};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageSettings {
    /// `INSTANCE_HOSTS` as configured (empty: ServiceNow's own domains).
    pub instance_hosts: String,
    pub allow_loopback_instances: bool,
    /// The days a new connection's backfill covers.
    pub backfill_days: i64,
    /// Which fields each method needs, from the table `validate` uses.
    pub methods: Vec<MethodSettings>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MethodSettings {
    pub id: AuthMethod,
    pub label: String,
    pub fields: Vec<String>,
}

impl PageSettings {
    pub fn new(instance_hosts: &str, loopback: Loopback, backfill_days: i64) -> Self {
        PageSettings {
            instance_hosts: instance_hosts.to_string(),
            allow_loopback_instances: loopback == Loopback::Allowed,
            backfill_days,
            methods: AuthMethod::ALL
                .iter()
                .map(|m| MethodSettings {
                    id: *m,
                    label: m.label().to_string(),
                    fields: m.fields().iter().map(|f| f.as_str().to_string()).collect(),
                })
                .collect(),
        }
    }

    /// The instance-URL policy these settings describe, as the worker applies it.
    pub fn host_policy(&self) -> HostPolicy {
        let hosts = Some(self.instance_hosts.as_str());
        let loopback = if self.allow_loopback_instances {
            "true"
        } else {
            "false"
        };
        HostPolicy::from_config(hosts, Some(loopback))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_applies_the_workers_policy() {
        let strict = PageSettings::new("", Loopback::Refused, 7);
        assert_eq!(strict.host_policy().loopback(), Loopback::Refused);
        let dev = PageSettings::new("", Loopback::Allowed, 7);
        assert!(crate::servicenow::instance_url::parse(
            "http://127.0.0.1:9000",
            &dev.host_policy()
        )
        .is_ok());
        assert!(crate::servicenow::instance_url::parse(
            "http://127.0.0.1:9000",
            &strict.host_policy()
        )
        .is_err());
        let own = PageSettings::new("example.org", Loopback::Refused, 7);
        assert!(crate::servicenow::instance_url::parse(
            "https://sn.example.org",
            &own.host_policy()
        )
        .is_ok());
        let back: PageSettings =
            serde_json::from_value(serde_json::to_value(&strict).unwrap()).unwrap();
        assert_eq!(back, strict);
        assert_eq!(back.methods[1].id, AuthMethod::ClientCredentials);
        assert_eq!(back.methods[1].fields, ["client_id", "client_secret"]);
    }
}
