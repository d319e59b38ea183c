//! Cloudflare Access sign-in: the `Cf-Access-Jwt-Assertion` token taken
//! apart and its claims checked. The RS256 signature itself is verified by
//! the runtime's WebCrypto (the worker), with a key this module picks from
//! the team's certs by `kid`: no RSA code here.

use base64::Engine;
use serde::Deserialize;

/// Clock difference tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: i64 = 60;

/// `ACCESS_TEAM_DOMAIN` and `ACCESS_AUD`, read once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessConfig {
    /// `https://<team>.cloudflareaccess.com`: the tokens' `iss`.
    pub issuer: String,
    pub audience: String,
}

impl AccessConfig {
    /// `None` unless both are set; the team domain may be given with or
    /// without `https://`.
    pub fn from_config(team_domain: Option<&str>, audience: Option<&str>) -> Option<AccessConfig> {
        let domain = team_domain?.trim().trim_end_matches('/');
        let host = domain.strip_prefix("https://").unwrap_or(domain);
        let audience = audience?.trim();
        if host.is_empty() || audience.is_empty() || host.contains('/') {
            return None;
        }
        Some(AccessConfig {
            issuer: format!("https://{}", host.to_ascii_lowercase()),
            audience: audience.to_string(),
        })
    }

    /// Where the team publishes its signing keys.
    pub fn certs_url(&self) -> String {
        format!("{}/cdn-cgi/access/certs", self.issuer)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JwtRefusal {
    Malformed,
    /// Any `alg` but RS256, `none` included.
    Algorithm,
    UnknownKey,
    BadSignature,
    Expired,
    NotYetValid,
    Audience,
    Issuer,
}

impl JwtRefusal {
    /// Why, for the worker's log and the audit entry (never the token).
    pub fn as_str(self) -> &'static str {
        match self {
            JwtRefusal::Malformed => "access token malformed",
            JwtRefusal::Algorithm => "access token algorithm is not RS256",
            JwtRefusal::UnknownKey => "access token signed by an unknown key",
            JwtRefusal::BadSignature => "access token signature does not verify",
            JwtRefusal::Expired => "access token expired",
            JwtRefusal::NotYetValid => "access token not yet valid",
            JwtRefusal::Audience => "access token for another application",
            JwtRefusal::Issuer => "access token from another team",
        }
    }
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct Claims {
    aud: Option<Audience>,
    iss: Option<String>,
    exp: Option<i64>,
    nbf: Option<i64>,
    sub: Option<String>,
    email: Option<String>,
    common_name: Option<String>,
}

/// A token taken apart, its signature not yet checked.
#[derive(Debug)]
pub struct SignedToken {
    pub kid: String,
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: Vec<u8>,
    pub signature: Vec<u8>,
    claims: Claims,
}

/// Who the token names, once every check passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessIdentity {
    pub subject: String,
    /// The email, or a service token's common name.
    pub name: String,
}

fn b64(part: &str) -> Result<Vec<u8>, JwtRefusal> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| JwtRefusal::Malformed)
}

pub fn parse(token: &str) -> Result<SignedToken, JwtRefusal> {
    let mut parts = token.trim().split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtRefusal::Malformed);
    };
    let header: Header = serde_json::from_slice(&b64(h)?).map_err(|_| JwtRefusal::Malformed)?;
    if header.alg != "RS256" {
        return Err(JwtRefusal::Algorithm);
    }
    let kid = header.kid.ok_or(JwtRefusal::UnknownKey)?;
    let claims: Claims = serde_json::from_slice(&b64(p)?).map_err(|_| JwtRefusal::Malformed)?;
    let signature = b64(s)?;
    if signature.is_empty() {
        return Err(JwtRefusal::BadSignature);
    }
    Ok(SignedToken {
        kid,
        signing_input: format!("{h}.{p}").into_bytes(),
        signature,
        claims,
    })
}

impl SignedToken {
    /// The claims' checks; call after the signature verified.
    pub fn check(&self, config: &AccessConfig, now: i64) -> Result<AccessIdentity, JwtRefusal> {
        let c = &self.claims;
        let aud_ok = match &c.aud {
            Some(Audience::One(a)) => *a == config.audience,
            Some(Audience::Many(list)) => list.contains(&config.audience),
            None => false,
        };
        if !aud_ok {
            return Err(JwtRefusal::Audience);
        }
        if c.iss.as_deref().map(|i| i.trim_end_matches('/')) != Some(config.issuer.as_str()) {
            return Err(JwtRefusal::Issuer);
        }
        match c.exp {
            Some(exp) if now <= exp + LEEWAY_SECS => {}
            _ => return Err(JwtRefusal::Expired),
        }
        if c.nbf.is_some_and(|nbf| now + LEEWAY_SECS < nbf) {
            return Err(JwtRefusal::NotYetValid);
        }
        let name = c
            .email
            .clone()
            .or_else(|| c.common_name.clone())
            .ok_or(JwtRefusal::Malformed)?;
        Ok(AccessIdentity {
            subject: c.sub.clone().unwrap_or_else(|| name.clone()),
            name,
        })
    }
}

/// One RSA signing key of the team's certs, as WebCrypto imports it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct RsaJwk {
    pub kid: String,
    pub kty: String,
    pub n: String,
    pub e: String,
}

#[derive(Deserialize)]
struct Certs {
    keys: Vec<serde_json::Value>,
}

/// The RSA keys of a certs document; others (and malformed ones) are left out.
pub fn parse_certs(body: &[u8]) -> Option<Vec<RsaJwk>> {
    let certs: Certs = serde_json::from_slice(body).ok()?;
    Some(
        certs
            .keys
            .into_iter()
            .filter_map(|k| serde_json::from_value::<RsaJwk>(k).ok())
            .filter(|k| k.kty == "RSA")
            .collect(),
    )
}

/// How long fetched keys are trusted, and the least time between two
/// fetches forced by an unknown `kid` (so junk tokens cannot drive fetches).
pub const CERTS_TTL_MS: u64 = 600_000;
pub const CERTS_REFETCH_MIN_MS: u64 = 10_000;

/// Which keys a check asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeysWanted {
    /// The cached keys while they are fresh.
    Cached,
    /// A token named a key the cache lacks: the team may have rotated.
    Rotated,
}

/// Whether keys fetched from `cached_url` `age_ms` ago serve a check of
/// `url` that wants `wanted`, or must be fetched again.
pub fn cached_keys_serve(cached_url: &str, url: &str, age_ms: u64, wanted: KeysWanted) -> bool {
    let fresh = cached_url == url && age_ms < CERTS_TTL_MS;
    let may_refetch = age_ms >= CERTS_REFETCH_MIN_MS;
    fresh && !(wanted == KeysWanted::Rotated && may_refetch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: serde_json::Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn token(header: serde_json::Value, claims: serde_json::Value) -> String {
        format!("{}.{}.c2ln", enc(header), enc(claims))
    }

    fn config() -> AccessConfig {
        AccessConfig::from_config(Some("Team.cloudflareaccess.com/"), Some("aud1")).unwrap()
    }

    fn claims(exp: i64) -> serde_json::Value {
        serde_json::json!({"aud":["aud1"],"iss":"https://team.cloudflareaccess.com","exp":exp,"nbf":900,"sub":"u1","email":"a@example.com"})
    }

    #[test]
    fn config_needs_both_values() {
        assert_eq!(config().issuer, "https://team.cloudflareaccess.com");
        assert_eq!(
            config().certs_url(),
            "https://team.cloudflareaccess.com/cdn-cgi/access/certs"
        );
        assert!(AccessConfig::from_config(Some("t.example"), None).is_none());
        assert!(AccessConfig::from_config(None, Some("a")).is_none());
    }

    #[test]
    fn claims_are_checked_with_leeway() {
        let hdr = serde_json::json!({"alg":"RS256","kid":"k1"});
        let t = parse(&token(hdr.clone(), claims(2000))).unwrap();
        assert_eq!(t.kid, "k1");
        assert_eq!(t.signature, b"sig");
        let id = t.check(&config(), 1000).unwrap();
        assert_eq!(id.name, "a@example.com");
        assert_eq!(
            t.check(&config(), 2000 + LEEWAY_SECS + 1),
            Err(JwtRefusal::Expired)
        );
        assert_eq!(
            t.check(&config(), 900 - LEEWAY_SECS - 1),
            Err(JwtRefusal::NotYetValid)
        );
        let other =
            AccessConfig::from_config(Some("team.cloudflareaccess.com"), Some("aud2")).unwrap();
        assert_eq!(t.check(&other, 1000), Err(JwtRefusal::Audience));
        let mut c = claims(2000);
        c["iss"] = "https://evil.cloudflareaccess.com".into();
        let t = parse(&token(hdr.clone(), c)).unwrap();
        assert_eq!(t.check(&config(), 1000), Err(JwtRefusal::Issuer));
        let mut c = claims(2000);
        c.as_object_mut().unwrap().remove("exp");
        let t = parse(&token(hdr, c)).unwrap();
        assert_eq!(t.check(&config(), 1000), Err(JwtRefusal::Expired));
    }

    #[test]
    fn only_rs256_with_a_kid_is_taken() {
        for alg in ["none", "HS256", "RS512", "rs256"] {
            let t = token(serde_json::json!({"alg":alg,"kid":"k1"}), claims(2000));
            assert_eq!(parse(&t).unwrap_err(), JwtRefusal::Algorithm, "{alg}");
        }
        let t = token(serde_json::json!({"alg":"RS256"}), claims(2000));
        assert_eq!(parse(&t).unwrap_err(), JwtRefusal::UnknownKey);
        for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert_eq!(parse(bad).unwrap_err(), JwtRefusal::Malformed, "{bad}");
        }
        let unsigned = format!(
            "{}.{}.",
            enc(serde_json::json!({"alg":"RS256","kid":"k"})),
            enc(claims(1))
        );
        assert_eq!(parse(&unsigned).unwrap_err(), JwtRefusal::BadSignature);
    }

    #[test]
    fn certs_keep_rsa_keys() {
        let body = br#"{"keys":[{"kid":"a","kty":"RSA","alg":"RS256","use":"sig","e":"AQAB","n":"xyz"},{"kid":"b","kty":"EC","crv":"P-256","x":"1","y":"2"}],"public_cert":{"kid":"a","cert":"..."}}"#;
        let keys = parse_certs(body).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid, "a");
        assert!(parse_certs(b"nope").is_none());
    }

    #[test]
    fn cached_keys_serve_until_stale_and_a_rotation_refetches_at_most_every_ten_seconds() {
        let url = "https://team.cloudflareaccess.com/cdn-cgi/access/certs";
        assert!(cached_keys_serve(url, url, 0, KeysWanted::Cached));
        assert!(!cached_keys_serve(
            url,
            url,
            CERTS_TTL_MS,
            KeysWanted::Cached
        ));
        assert!(!cached_keys_serve(
            "https://other",
            url,
            0,
            KeysWanted::Cached
        ));
        assert!(cached_keys_serve(
            url,
            url,
            CERTS_REFETCH_MIN_MS - 1,
            KeysWanted::Rotated
        ));
        assert!(!cached_keys_serve(
            url,
            url,
            CERTS_REFETCH_MIN_MS,
            KeysWanted::Rotated
        ));
    }
}
