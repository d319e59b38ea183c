//! The worker's HTTP routes as data: a request's method and path resolve to
//! one `Route`, or to "no such resource", or to "not this method" with the
//! methods the resource has (the 405's `Allow`). Who may call a route is
//! `access::permits`; which routes change something, and so are audited, is
//! `Route::change`.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ApiMethod {
    Get,
    Post,
    Patch,
    Delete,
}

impl ApiMethod {
    pub fn parse(method: &str) -> Option<ApiMethod> {
        match method {
            "GET" => Some(ApiMethod::Get),
            "POST" => Some(ApiMethod::Post),
            "PATCH" => Some(ApiMethod::Patch),
            "DELETE" => Some(ApiMethod::Delete),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ApiMethod::Get => "GET",
            ApiMethod::Post => "POST",
            ApiMethod::Patch => "PATCH",
            ApiMethod::Delete => "DELETE",
        }
    }
}

/// What a path under `/api/v1/` names. Ids are kept as sent: a handler
/// answers `not_found` for one that cannot exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    OpenApi,
    Settings,
    Validate,
    Me,
    Keys,
    Key(String),
    Tickets,
    Audit,
    Alerts,
    AlertsNdjson,
    Alert(String),
    Sinks,
    Sink(String),
    SinkTest(String),
    SinkReplay(String),
    SinkDeadLetters(String),
    SinkDeadLetterReplay(String),
    Connections,
    Connection(String),
    Reconnect(String),
    Pull(String),
    Runs(String),
    Events(String),
    EventsNdjson(String),
    Accounts(String),
    Posture(String),
    PostureCheck(String),
    PostureNdjson(String),
}

impl Resource {
    /// `path` is what follows `/api/v1/`.
    pub fn parse(path: &str) -> Option<Resource> {
        let segments: Vec<&str> = path.split('/').collect();
        let id = |s: &str| s.to_string();
        Some(match segments.as_slice() {
            ["openapi.json"] => Resource::OpenApi,
            ["settings"] => Resource::Settings,
            ["validate"] => Resource::Validate,
            ["me"] => Resource::Me,
            ["keys"] => Resource::Keys,
            ["keys", k] if !k.is_empty() => Resource::Key(id(k)),
            ["tickets"] => Resource::Tickets,
            ["audit"] => Resource::Audit,
            ["alerts"] => Resource::Alerts,
            ["alerts.ndjson"] => Resource::AlertsNdjson,
            ["alerts", a] if !a.is_empty() => Resource::Alert(id(a)),
            ["sinks"] => Resource::Sinks,
            ["sinks", k] if !k.is_empty() => Resource::Sink(id(k)),
            ["sinks", k, "test"] => Resource::SinkTest(id(k)),
            ["sinks", k, "replay"] => Resource::SinkReplay(id(k)),
            ["sinks", k, "dead_letters"] => Resource::SinkDeadLetters(id(k)),
            ["sinks", k, "dead_letters", "replay"] => Resource::SinkDeadLetterReplay(id(k)),
            ["connections"] => Resource::Connections,
            ["connections", c] if !c.is_empty() => Resource::Connection(id(c)),
            ["connections", c, "reconnect"] => Resource::Reconnect(id(c)),
            ["connections", c, "pull"] => Resource::Pull(id(c)),
            ["connections", c, "runs"] => Resource::Runs(id(c)),
            ["connections", c, "events"] => Resource::Events(id(c)),
            ["connections", c, "events.ndjson"] => Resource::EventsNdjson(id(c)),
            ["connections", c, "accounts"] => Resource::Accounts(id(c)),
            ["connections", c, "posture"] => Resource::Posture(id(c)),
            ["connections", c, "posture", "check"] => Resource::PostureCheck(id(c)),
            ["connections", c, "posture.ndjson"] => Resource::PostureNdjson(id(c)),
            _ => return None,
        })
    }

    /// The methods this resource answers, in the order `Allow` lists them.
    pub fn methods(&self) -> &'static [ApiMethod] {
        use ApiMethod::*;
        match self {
            Resource::OpenApi
            | Resource::Settings
            | Resource::Me
            | Resource::Audit
            | Resource::AlertsNdjson
            | Resource::Alerts
            | Resource::Runs(_)
            | Resource::Events(_)
            | Resource::EventsNdjson(_)
            | Resource::Accounts(_)
            | Resource::Posture(_)
            | Resource::SinkDeadLetters(_)
            | Resource::PostureNdjson(_) => &[Get],
            Resource::Validate
            | Resource::Tickets
            | Resource::SinkTest(_)
            | Resource::SinkReplay(_)
            | Resource::SinkDeadLetterReplay(_)
            | Resource::Reconnect(_)
            | Resource::Pull(_)
            | Resource::PostureCheck(_) => &[Post],
            Resource::Keys | Resource::Connections | Resource::Sinks => &[Get, Post],
            Resource::Key(_) => &[Delete],
            Resource::Alert(_) => &[Get, Patch],
            Resource::Connection(_) | Resource::Sink(_) => &[Get, Patch, Delete],
        }
    }

    /// The connection a path is about, if any.
    pub fn connection_id(&self) -> Option<&str> {
        match self {
            Resource::Connection(c)
            | Resource::Reconnect(c)
            | Resource::Pull(c)
            | Resource::Runs(c)
            | Resource::Events(c)
            | Resource::EventsNdjson(c)
            | Resource::Accounts(c)
            | Resource::Posture(c)
            | Resource::PostureCheck(c)
            | Resource::PostureNdjson(c) => Some(c),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub method: ApiMethod,
    pub resource: Resource,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    Found(Route),
    /// The resource exists but not with this method: answer 405 with these.
    MethodNotAllowed(&'static [ApiMethod]),
    NotFound,
}

/// `method` as the client sent it (an unknown one, such as PROPFIND, is
/// never taken for GET); `path` after `/api/v1/`.
pub fn resolve(method: &str, path: &str) -> Resolution {
    let Some(resource) = Resource::parse(path) else {
        return Resolution::NotFound;
    };
    let allowed = resource.methods();
    match ApiMethod::parse(method) {
        Some(m) if allowed.contains(&m) => Resolution::Found(Route {
            method: m,
            resource,
        }),
        _ => Resolution::MethodNotAllowed(allowed),
    }
}

/// The `Allow` header's value; OPTIONS is always answered (CORS preflight).
/// The largest request body the API reads: every body is a small JSON
/// object (a connect request, a sink's settings), so anything larger is a
/// mistake or an attack, refused before it is read.
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

/// Whether a request's body may be read, from its `Content-Length` and
/// `Transfer-Encoding`: a length within the cap, or no body at all (no
/// length and not chunked: `curl -X POST` with no data). A chunked body of
/// unknown length is refused rather than read to find out.
pub fn body_allowed(content_length: Option<&str>, transfer_encoding: Option<&str>) -> bool {
    match content_length {
        Some(v) => v.trim().parse::<u64>().is_ok_and(|n| n <= MAX_BODY_BYTES),
        None => transfer_encoding.is_none_or(|t| t.trim().is_empty()),
    }
}

/// The longest request path an audit entry or a log line holds.
pub const LOGGED_PATH_CHARS: usize = 200;

/// A request path as logged or audited: at most `LOGGED_PATH_CHARS`
/// characters, a longer one cut with its full length said. A stranger's
/// 16 KB path never reaches a log or a row whole.
pub fn logged_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.char_indices().nth(LOGGED_PATH_CHARS) {
        None => std::borrow::Cow::Borrowed(path),
        Some((cut, _)) => {
            std::borrow::Cow::Owned(format!("{}… ({} bytes)", &path[..cut], path.len()))
        }
    }
}

pub fn allow_header(methods: &[ApiMethod]) -> String {
    let mut parts: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
    parts.push("OPTIONS");
    parts.join(", ")
}

/// A change the audit log records; reads are not recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    #[serde(rename = "connection.create")]
    ConnectionCreate,
    #[serde(rename = "connection.reconnect")]
    ConnectionReconnect,
    /// A PATCH: rename and/or enable/disable, told apart by its body.
    #[serde(rename = "connection.update")]
    ConnectionUpdate,
    #[serde(rename = "connection.delete")]
    ConnectionDelete,
    #[serde(rename = "connection.pull")]
    ConnectionPull,
    #[serde(rename = "posture.check")]
    PostureCheck,
    #[serde(rename = "key.create")]
    KeyCreate,
    #[serde(rename = "key.revoke")]
    KeyRevoke,
    #[serde(rename = "ticket.mint")]
    TicketMint,
    #[serde(rename = "alert.status")]
    AlertStatus,
    #[serde(rename = "sink.create")]
    SinkCreate,
    #[serde(rename = "sink.change")]
    SinkChange,
    #[serde(rename = "sink.delete")]
    SinkDelete,
    #[serde(rename = "sink.test")]
    SinkTest,
    #[serde(rename = "sink.replay")]
    SinkReplay,
    #[serde(rename = "sink.dead_letter_replay")]
    SinkDeadLetterReplay,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::ConnectionCreate => "connection.create",
            Change::ConnectionReconnect => "connection.reconnect",
            Change::ConnectionUpdate => "connection.update",
            Change::ConnectionDelete => "connection.delete",
            Change::ConnectionPull => "connection.pull",
            Change::PostureCheck => "posture.check",
            Change::KeyCreate => "key.create",
            Change::KeyRevoke => "key.revoke",
            Change::TicketMint => "ticket.mint",
            Change::AlertStatus => "alert.status",
            Change::SinkCreate => "sink.create",
            Change::SinkChange => "sink.change",
            Change::SinkDelete => "sink.delete",
            Change::SinkTest => "sink.test",
            Change::SinkReplay => "sink.replay",
            Change::SinkDeadLetterReplay => "sink.dead_letter_replay",
        }
    }
}

impl Route {
    pub fn change(&self) -> Option<Change> {
        use ApiMethod::*;
        Some(match (self.method, &self.resource) {
            (Post, Resource::Connections) => Change::ConnectionCreate,
            (Post, Resource::Reconnect(_)) => Change::ConnectionReconnect,
            (Patch, Resource::Connection(_)) => Change::ConnectionUpdate,
            (Delete, Resource::Connection(_)) => Change::ConnectionDelete,
            (Post, Resource::Pull(_)) => Change::ConnectionPull,
            (Post, Resource::PostureCheck(_)) => Change::PostureCheck,
            (Post, Resource::Keys) => Change::KeyCreate,
            (Delete, Resource::Key(_)) => Change::KeyRevoke,
            (Post, Resource::Tickets) => Change::TicketMint,
            (Patch, Resource::Alert(_)) => Change::AlertStatus,
            (Post, Resource::Sinks) => Change::SinkCreate,
            (Patch, Resource::Sink(_)) => Change::SinkChange,
            (Delete, Resource::Sink(_)) => Change::SinkDelete,
            (Post, Resource::SinkTest(_)) => Change::SinkTest,
            (Post, Resource::SinkReplay(_)) => Change::SinkReplay,
            (Post, Resource::SinkDeadLetterReplay(_)) => Change::SinkDeadLetterReplay,
            _ => return None,
        })
    }

    /// What the change is done to, when the path names it (a creation's
    /// target is only known from its answer).
    pub fn target(&self) -> Option<&str> {
        match &self.resource {
            Resource::Key(k) => Some(k),
            Resource::Alert(a) => Some(a),
            Resource::Sink(k)
            | Resource::SinkTest(k)
            | Resource::SinkReplay(k)
            | Resource::SinkDeadLetters(k)
            | Resource::SinkDeadLetterReplay(k) => Some(k),
            other => other.connection_id(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_read_only_with_a_length_within_the_cap() {
        assert!(body_allowed(Some("120"), None));
        assert!(body_allowed(Some("65536"), None));
        assert!(!body_allowed(Some("65537"), None));
        assert!(!body_allowed(Some("lots"), None));
        assert!(body_allowed(None, None), "no body at all");
        assert!(
            !body_allowed(None, Some("chunked")),
            "a body of unknown length is not read"
        );
    }

    #[test]
    fn a_long_path_is_cut_for_logs_and_the_audit_and_a_short_one_kept() {
        assert_eq!(logged_path("/api/v1/connections"), "/api/v1/connections");
        let long = format!("/api/v1/{}", "é".repeat(8_000));
        let cut = logged_path(&long);
        assert!(cut.chars().count() < LOGGED_PATH_CHARS + 20, "{cut}");
        assert!(cut.ends_with(&format!("… ({} bytes)", long.len())), "{cut}");
    }

    #[test]
    fn every_resource_resolves_with_its_methods_and_refuses_others() {
        assert_eq!(
            resolve("GET", "connections/abc/events"),
            Resolution::Found(Route {
                method: ApiMethod::Get,
                resource: Resource::Events("abc".into())
            })
        );
        assert_eq!(
            resolve("PUT", "connections/abc"),
            Resolution::MethodNotAllowed(&[ApiMethod::Get, ApiMethod::Patch, ApiMethod::Delete])
        );
        assert_eq!(
            resolve("DELETE", "settings"),
            Resolution::MethodNotAllowed(&[ApiMethod::Get])
        );
        // An unknown method is never read as GET.
        assert_eq!(
            resolve("PROPFIND", "settings"),
            Resolution::MethodNotAllowed(&[ApiMethod::Get])
        );
        assert_eq!(
            resolve("get", "settings"),
            Resolution::MethodNotAllowed(&[ApiMethod::Get])
        );
        assert_eq!(resolve("GET", "nope"), Resolution::NotFound);
        assert_eq!(resolve("GET", "connections/a/b/c/d"), Resolution::NotFound);
        assert_eq!(resolve("GET", "connections/"), Resolution::NotFound);
        assert_eq!(
            allow_header(&[ApiMethod::Get, ApiMethod::Patch]),
            "GET, PATCH, OPTIONS"
        );
    }

    #[test]
    fn changes_are_the_non_get_routes() {
        let paths = [
            "openapi.json",
            "settings",
            "validate",
            "me",
            "keys",
            "keys/k",
            "tickets",
            "audit",
            "alerts",
            "alerts.ndjson",
            "alerts/a",
            "connections",
            "connections/c",
            "connections/c/reconnect",
            "connections/c/pull",
            "connections/c/runs",
            "connections/c/events",
            "connections/c/events.ndjson",
            "connections/c/accounts",
            "connections/c/posture",
            "connections/c/posture/check",
            "connections/c/posture.ndjson",
        ];
        for p in paths {
            let resource = Resource::parse(p).expect(p);
            for m in resource.methods() {
                let route = Route {
                    method: *m,
                    resource: resource.clone(),
                };
                // POST /validate checks fields and changes nothing.
                let changes = *m != ApiMethod::Get && resource != Resource::Validate;
                assert_eq!(route.change().is_some(), changes, "{m:?} {p}");
            }
        }
    }
}
