//! Instance URLs: what the admin may type, what we normalize it to, and the
//! host policy that keeps the worker from being pointed anywhere else (SSRF).
//!
//! Accepted: `acme`, `acme.service-now.com`, `https://acme.service-now.com/`,
//! `https://acme.service-now.com/navpage.do`: all become
//! `https://acme.service-now.com`. Refused: other schemes and ports, userinfo,
//! IP literals in any notation, punycode and non-ASCII hosts, trailing dots,
//! percent-encoding in the host, and hosts outside `INSTANCE_HOSTS`.
//!
//! No URL crate: everything non-ASCII is refused before parsing, and the
//! `url` crate's IDNA tables would cost the browser module tens of kilobytes
//! for hosts we refuse anyway. What is parsed here is small and covered by
//! the hostile list and property tests below.

use serde::Serialize;

pub const DEFAULT_INSTANCE_HOSTS: &str = ".service-now.com,.servicenowservices.com";

/// Whether `http://127.0.0.1:<port>` and other loopback addresses are
/// allowed: for local development and tests only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Loopback {
    #[default]
    Refused,
    Allowed,
}

/// Which hosts a connection may point at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPolicy {
    /// Lower-case suffixes with their leading dot (`.service-now.com`).
    suffixes: Vec<String>,
    loopback: Loopback,
}

impl HostPolicy {
    /// From the worker's `INSTANCE_HOSTS` and `ALLOW_LOOPBACK_INSTANCES` values.
    pub fn from_config(instance_hosts: Option<&str>, allow_loopback: Option<&str>) -> Self {
        let hosts = instance_hosts
            .filter(|h| !h.trim().is_empty())
            .unwrap_or(DEFAULT_INSTANCE_HOSTS);
        let suffixes = hosts
            .split(',')
            .map(|s| s.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|s| !s.trim_start_matches('.').is_empty())
            .map(|s| {
                if s.starts_with('.') {
                    s
                } else {
                    format!(".{s}")
                }
            })
            .collect();
        HostPolicy {
            suffixes,
            loopback: if allow_loopback.is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
                Loopback::Allowed
            } else {
                Loopback::Refused
            },
        }
    }

    pub fn loopback(&self) -> Loopback {
        self.loopback
    }
}

impl Default for HostPolicy {
    fn default() -> Self {
        HostPolicy::from_config(None, None)
    }
}

/// A normalized instance origin, without a trailing slash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct InstanceUrl(String);

impl InstanceUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `https://acme.service-now.com` + `/api/now/...`.
    pub fn join(&self, path_and_query: &str) -> String {
        format!("{}{}", self.0, path_and_query)
    }
}

impl std::fmt::Display for InstanceUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceUrlError {
    Empty,
    Malformed,
    Scheme,
    Userinfo,
    Port,
    IpLiteral,
    NonAscii,
    Punycode,
    TrailingDot,
    PercentEncoded,
    HostNotAllowed,
    NotAnInstanceName,
}

impl InstanceUrlError {
    /// The field error code: policy refusals are `instance_url_forbidden`.
    pub fn code(self) -> &'static str {
        match self {
            InstanceUrlError::Empty => "required",
            InstanceUrlError::Malformed => "invalid",
            _ => "instance_url_forbidden",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            InstanceUrlError::Empty => "Enter your instance URL, such as https://acme.service-now.com or just acme.",
            InstanceUrlError::Malformed => "This is not a URL. Enter your instance URL, such as https://acme.service-now.com.",
            InstanceUrlError::Scheme => "Only https:// instance URLs are allowed.",
            InstanceUrlError::Userinfo => "Remove the user name or password from the URL; enter them in their own fields.",
            InstanceUrlError::Port => "Remove the port: instances are reached on the standard https port.",
            InstanceUrlError::IpLiteral => "Use the instance's name, not an IP address, such as https://acme.service-now.com.",
            InstanceUrlError::NonAscii | InstanceUrlError::Punycode => "Internationalized host names are not allowed; type the instance address in plain ASCII.",
            InstanceUrlError::TrailingDot => "Remove the trailing dot from the host name.",
            InstanceUrlError::PercentEncoded => "Remove the percent-encoding from the host name.",
            InstanceUrlError::HostNotAllowed => "This host is not a ServiceNow instance this connector may reach (allowed: hosts under INSTANCE_HOSTS, such as acme.service-now.com).",
            InstanceUrlError::NotAnInstanceName => "Use the instance address itself, such as https://acme.service-now.com (one name before the domain).",
        }
    }
}

/// IP literals in any notation a resolver accepts: dotted, decimal, octal,
/// hex, short forms, IPv6. A host whose labels are all numeric (or 0x…) is
/// one; so is anything in brackets. Shared with sink URLs.
pub(crate) fn is_ip_literal(host: &str) -> bool {
    let numeric_label = |l: &str| {
        !l.is_empty()
            && (l.bytes().all(|b| b.is_ascii_digit())
                || (l.starts_with("0x") && l[2..].bytes().all(|b| b.is_ascii_hexdigit())))
    };
    host.starts_with('[')
        || host.parse::<std::net::IpAddr>().is_ok()
        || host.split('.').all(numeric_label)
}

fn is_instance_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Parses and normalizes what the admin typed, under `policy`.
pub fn parse(input: &str, policy: &HostPolicy) -> Result<InstanceUrl, InstanceUrlError> {
    let raw = input.trim();
    if raw.is_empty() {
        return Err(InstanceUrlError::Empty);
    }
    if !raw.is_ascii() {
        return Err(InstanceUrlError::NonAscii);
    }
    if raw
        .bytes()
        .any(|b| b.is_ascii_control() || b == b' ' || b == b'\\')
    {
        return Err(InstanceUrlError::Malformed);
    }
    let lower = raw.to_ascii_lowercase();
    let with_scheme = if lower.contains("://") {
        raw.to_string()
    } else if is_instance_label(&lower) {
        match policy.suffixes.first() {
            Some(suffix) => format!("https://{lower}{suffix}"),
            None => return Err(InstanceUrlError::HostNotAllowed),
        }
    } else if lower.contains(':') && !lower.contains('.') && !lower.starts_with('[') {
        // `javascript:…`, `mailto:…`, `data:…`: a scheme without `//`.
        return Err(InstanceUrlError::Scheme);
    } else {
        format!("https://{raw}")
    };

    // The authority as typed, before the URL parser normalizes it away.
    let after_scheme = with_scheme
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or("");
    let authority = after_scheme.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(InstanceUrlError::Userinfo);
    }
    if authority.contains('%') {
        return Err(InstanceUrlError::PercentEncoded);
    }
    let host_text = if authority.starts_with('[') {
        authority
            .split_once(']')
            .map(|(h, _)| format!("{h}]"))
            .unwrap_or_default()
    } else {
        authority
            .split(':')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    if host_text.ends_with('.') {
        return Err(InstanceUrlError::TrailingDot);
    }

    let scheme = with_scheme
        .split_once("://")
        .map(|(s, _)| s.to_ascii_lowercase())
        .unwrap_or_default();
    if scheme != "https" && scheme != "http" {
        return Err(InstanceUrlError::Scheme);
    }
    // The port as typed: `host:port`, or `[v6]:port`.
    let port_text = if authority.starts_with('[') {
        authority.split_once("]:").map(|(_, p)| p)
    } else {
        authority.split_once(':').map(|(_, p)| p)
    };
    let port = match port_text {
        None | Some("") => None,
        Some(p) => Some(p.parse::<u16>().map_err(|_| InstanceUrlError::Malformed)?),
    };
    let default_port = if scheme == "https" { 443 } else { 80 };
    let loopback_text = matches!(host_text.as_str(), "127.0.0.1" | "[::1]" | "localhost");
    if policy.loopback == Loopback::Allowed && loopback_text {
        return Ok(InstanceUrl(format!(
            "{scheme}://{host_text}:{}",
            port.unwrap_or(default_port)
        )));
    }
    if scheme != "https" {
        return Err(InstanceUrlError::Scheme);
    }
    if host_text.is_empty()
        || !host_text.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || b == b'-'
                || b == b'.'
                || b == b'['
                || b == b']'
                || b == b':'
        })
    {
        return Err(InstanceUrlError::Malformed);
    }
    if is_ip_literal(&host_text) {
        return Err(InstanceUrlError::IpLiteral);
    }
    if port.is_some_and(|p| p != default_port) {
        return Err(InstanceUrlError::Port);
    }
    let host = host_text.clone();
    if host.split('.').any(|l| l.starts_with("xn--")) {
        return Err(InstanceUrlError::Punycode);
    }
    if host == "localhost" || host.ends_with(".localhost") {
        return Err(InstanceUrlError::HostNotAllowed);
    }
    let Some(suffix) = policy.suffixes.iter().find(|s| host.ends_with(s.as_str())) else {
        return Err(InstanceUrlError::HostNotAllowed);
    };
    let name = &host[..host.len() - suffix.len()];
    if !is_instance_label(name) {
        return Err(InstanceUrlError::NotAnInstanceName);
    }
    Ok(InstanceUrl(format!("https://{host}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> HostPolicy {
        HostPolicy::default()
    }

    #[test]
    fn accepted_forms_normalize_to_the_origin() {
        for input in [
            "acme",
            "ACME",
            "acme.service-now.com",
            "https://acme.service-now.com",
            "https://acme.service-now.com/",
            "https://acme.service-now.com/navpage.do",
            "  https://Acme.Service-Now.com/now/nav/ui/home?x=%2F#top  ",
            "https://acme.service-now.com:443/",
        ] {
            assert_eq!(
                parse(input, &strict()).map(|u| u.0),
                Ok("https://acme.service-now.com".to_string()),
                "{input}"
            );
        }
        assert_eq!(
            parse("gov1.servicenowservices.com", &strict())
                .unwrap()
                .as_str(),
            "https://gov1.servicenowservices.com"
        );
    }

    /// The hostile list, shared with the end-to-end tests: every entry must
    /// be refused. `{port}` stands for a local listener's port.
    fn hostile() -> Vec<String> {
        let list: Vec<String> =
            serde_json::from_str(include_str!("../../../../tests/fixtures/hostile-urls.json"))
                .unwrap();
        assert!(list.len() >= 40);
        list.into_iter()
            .map(|u| u.replace("{port}", "8788"))
            .collect()
    }

    #[test]
    fn hostile_urls_are_refused() {
        for input in hostile() {
            assert!(parse(&input, &strict()).is_err(), "accepted {input:?}");
        }
    }

    #[test]
    fn hostile_urls_stay_refused_with_loopback_on_except_plain_loopback() {
        let dev = HostPolicy::from_config(None, Some("true"));
        for input in hostile() {
            let expected_ok = matches!(
                input.as_str(),
                "https://127.0.0.1" | "https://[::1]" | "https://localhost"
            );
            assert_eq!(parse(&input, &dev).is_ok(), expected_ok, "{input:?}");
        }
        assert_eq!(
            parse("http://127.0.0.1:8788", &dev).unwrap().as_str(),
            "http://127.0.0.1:8788"
        );
        assert_eq!(
            parse("http://127.0.0.1:8788/", &strict()),
            Err(InstanceUrlError::Scheme)
        );
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(
            parse("https://u:p@acme.service-now.com", &strict()),
            Err(InstanceUrlError::Userinfo)
        );
        assert_eq!(
            parse("https://acme.service-now.com:8443", &strict()),
            Err(InstanceUrlError::Port)
        );
        assert_eq!(
            parse("https://2130706433", &strict()),
            Err(InstanceUrlError::IpLiteral)
        );
        assert_eq!(
            parse("https://acme.service-now.com.", &strict()),
            Err(InstanceUrlError::TrailingDot)
        );
        assert_eq!(
            parse("https://xn--acme-9qa.service-now.com", &strict()),
            Err(InstanceUrlError::Punycode)
        );
        assert_eq!(
            parse("https://example.com", &strict()),
            Err(InstanceUrlError::HostNotAllowed)
        );
        assert_eq!(
            parse("", &strict()).map_err(InstanceUrlError::code),
            Err("required")
        );
        assert_eq!(
            parse("https://example.com", &strict()).map_err(InstanceUrlError::code),
            Err("instance_url_forbidden")
        );
    }

    #[test]
    fn policy_suffixes_come_from_config() {
        let p = HostPolicy::from_config(Some(" example.org , .corp.test. "), None);
        assert_eq!(
            parse("acme", &p).unwrap().as_str(),
            "https://acme.example.org"
        );
        assert_eq!(
            parse("https://x.corp.test", &p).unwrap().as_str(),
            "https://x.corp.test"
        );
        assert!(parse("https://acme.service-now.com", &p).is_err());
        assert!(parse("https://evilexample.org", &p).is_err());
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_accepted_form_of_a_name_normalizes_the_same(
            name in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?",
            path in "(/[a-z0-9._]{0,12}){0,3}",
            upper in any::<bool>(),
        ) {
            // A label starting `xn--` is Punycode, refused on purpose
            // (lookalike hosts): not a name this property is about.
            prop_assume!(!name.starts_with("xn--"));
            let want = format!("https://{name}.service-now.com");
            let host = format!("{name}.service-now.com");
            let host = if upper { host.to_ascii_uppercase() } else { host };
            for input in [name.clone(), host.clone(), format!("https://{host}{path}"), format!("  https://{host}/  ")] {
                prop_assert_eq!(parse(&input, &HostPolicy::default()).map(|u| u.0), Ok(want.clone()));
            }
        }

        #[test]
        fn whatever_is_accepted_is_an_https_origin_under_an_allowed_suffix(input in "\\PC{0,60}") {
            if let Ok(u) = parse(&input, &HostPolicy::default()) {
                let host = u.as_str().strip_prefix("https://").unwrap_or("");
                prop_assert!(!host.is_empty());
                prop_assert!(host.ends_with(".service-now.com") || host.ends_with(".servicenowservices.com"));
                prop_assert!(!host.contains(['@', ':', '/', '%', '[']));
                prop_assert_eq!(host.matches('.').count(), 2);
            }
        }

        #[test]
        fn ipv4_addresses_are_refused_in_any_notation(ip in any::<u32>()) {
            let [a, b, c, d] = ip.to_be_bytes();
            let dev = HostPolicy::from_config(None, Some("true"));
            for input in [format!("https://{ip}"), format!("https://{a}.{b}.{c}.{d}"), format!("https://0x{ip:x}"), format!("https://0{ip:o}")] {
                let loopback_text = input == "https://127.0.0.1";
                prop_assert!(parse(&input, &HostPolicy::default()).is_err());
                prop_assert_eq!(parse(&input, &dev).is_ok(), loopback_text, "{}", input);
            }
        }
    }
}
