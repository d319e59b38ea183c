//! Who may call what: API keys and connect tickets (their format and the
//! hash they are stored as), callers and their scopes, the decision for one
//! route, the slow-down for failed credentials, and the audit entry's shape.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::routes::{ApiMethod, Resource, Route};
use crate::secret::Secret;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Admin,
    Read,
    Connect,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Admin, Scope::Read, Scope::Connect];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Read => "read",
            Scope::Connect => "connect",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A non-empty, sorted set of scopes, stored as `admin,read`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    pub fn new(mut scopes: Vec<Scope>) -> Option<Scopes> {
        scopes.sort();
        scopes.dedup();
        (!scopes.is_empty()).then_some(Scopes(scopes))
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    pub fn stored(&self) -> String {
        self.0
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn from_stored(s: &str) -> Option<Scopes> {
        let parsed: Option<Vec<Scope>> = s.split(',').map(Scope::parse).collect();
        Scopes::new(parsed?)
    }

    pub fn list(&self) -> &[Scope] {
        &self.0
    }
}

/// The two kinds of bearer credentials the worker mints, by their prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialKind {
    ApiKey,
    Ticket,
}

impl CredentialKind {
    pub fn prefix(self) -> &'static str {
        match self {
            CredentialKind::ApiKey => "snck_",
            CredentialKind::Ticket => "snct_",
        }
    }

    /// 256 random bits after the prefix, base64url without padding.
    pub fn mint(self, random: &[u8; 32]) -> Secret {
        use base64::Engine;
        Secret::new(format!(
            "{}{}",
            self.prefix(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
        ))
    }
}

/// The SHA-256 of a minted credential, hex: all the store keeps. A salt
/// or a slow hash would add nothing for 256 random bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialHash(String);

impl CredentialHash {
    pub fn of(credential: &str) -> CredentialHash {
        let digest = Sha256::digest(credential.as_bytes());
        CredentialHash(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the `Authorization: Bearer` value looks like; the admin token has
/// no prefix of its own, so anything else is compared with it.
#[derive(Debug)]
pub enum Presented<'a> {
    Minted(CredentialKind, CredentialHash),
    Other(&'a str),
}

pub fn presented(bearer: &str) -> Presented<'_> {
    let bearer = bearer.trim();
    for kind in [CredentialKind::ApiKey, CredentialKind::Ticket] {
        if bearer.starts_with(kind.prefix()) {
            return Presented::Minted(kind, CredentialHash::of(bearer));
        }
    }
    Presented::Other(bearer)
}

/// Who is calling, once their credential has been checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    AdminToken,
    Key {
        id: String,
        name: String,
        scopes: Scopes,
    },
    Ticket(TicketGrant),
    /// A Cloudflare Access identity: `id` is the token's `sub`, `name` its
    /// email (or a service token's common name).
    Access {
        id: String,
        name: String,
    },
}

/// Connections one non-admin key may have made (itself or through the
/// tickets it minted), unless `CONNECTIONS_PER_KEY` says otherwise.
pub const CONNECTIONS_PER_KEY: u32 = 50;

/// Whose quota a new connection counts against: a key without the admin
/// scope, or the key that minted the ticket (`minter_is_admin`: that key
/// holds the admin scope). `None`: an admin (the admin token, an Access
/// identity, an admin key, or a ticket one of them minted), whose
/// connections are not counted.
pub fn connection_owner(caller: &Caller, minter: MinterScope) -> Option<String> {
    match caller {
        Caller::Key { id, scopes, .. } if !scopes.has(Scope::Admin) => Some(format!("key:{id}")),
        Caller::Ticket(t) if t.minted_by.starts_with("key:") && minter == MinterScope::NotAdmin => {
            Some(t.minted_by.clone())
        }
        _ => None,
    }
}

/// Whether the key that minted a ticket holds the admin scope (looked up
/// when the ticket connects; a revoked key counts as not admin).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MinterScope {
    Admin,
    NotAdmin,
}

/// The most API calls one key or ticket makes in a minute, as the
/// `CALLER_LIMIT` binding in wrangler.toml sets it (keep the two equal: the
/// refusal's message and `Retry-After` come from here).
pub const CALLS_PER_CALLER_MINUTE: u32 = 600;

/// The key a caller's API calls are counted under, per minute: a key, or a
/// ticket's minter (a key and its tickets share one budget). `None`: an admin (the admin token or an Access sign-in), whose
/// page and scripts are not limited here (their wrong guesses are, by the
/// failed-credential window).
pub fn rate_limit_key(caller: &Caller) -> Option<String> {
    match caller {
        Caller::Key { id, .. } => Some(format!("key:{id}")),
        // Under whoever minted it: minting tickets buys no more calls.
        Caller::Ticket(t) => Some(t.minted_by.clone()),
        Caller::AdminToken | Caller::Access { .. } => None,
    }
}

/// A connect ticket as checked: what it was minted for and what it did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketGrant {
    pub id: String,
    pub origin: Option<String>,
    /// Who minted it, as `kind:id` (`key:<id>` for an API key).
    pub minted_by: String,
    /// The connection it created, once it has.
    pub connection_id: Option<String>,
    /// Whether its one `POST /connections` is taken (in flight or done).
    pub claimed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    AdminToken,
    Key,
    Ticket,
    Access,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::AdminToken => "admin_token",
            ActorKind::Key => "key",
            ActorKind::Ticket => "ticket",
            ActorKind::Access => "access",
        }
    }

    pub fn parse(s: &str) -> Option<ActorKind> {
        [
            ActorKind::AdminToken,
            ActorKind::Key,
            ActorKind::Ticket,
            ActorKind::Access,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// An audit entry's "who": never a secret, only ids and names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: Option<String>,
    pub name: Option<String>,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        match self {
            Caller::AdminToken => Actor {
                kind: ActorKind::AdminToken,
                id: None,
                name: Some("admin token".into()),
            },
            Caller::Key { id, name, .. } => Actor {
                kind: ActorKind::Key,
                id: Some(id.clone()),
                name: Some(name.clone()),
            },
            Caller::Ticket(t) => Actor {
                kind: ActorKind::Ticket,
                id: Some(t.id.clone()),
                name: t.origin.clone(),
            },
            Caller::Access { id, name } => Actor {
                kind: ActorKind::Access,
                id: Some(id.clone()),
                name: Some(name.clone()),
            },
        }
    }

    /// The scopes this caller holds; a ticket holds none, only its grant.
    pub fn scopes(&self) -> Vec<Scope> {
        match self {
            Caller::AdminToken | Caller::Access { .. } => vec![Scope::Admin],
            Caller::Key { scopes, .. } => scopes.list().to_vec(),
            Caller::Ticket(_) => Vec::new(),
        }
    }

    fn has(&self, scope: Scope) -> bool {
        self.scopes().contains(&scope)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// 403 `forbidden`, with what would be needed.
    Forbidden(&'static str),
}

/// Whether `caller` may call `route`; `origin` is the request's `Origin`.
pub fn permits(caller: &Caller, route: &Route, origin: Option<&str>) -> Decision {
    use ApiMethod::*;
    let r = &route.resource;
    // Every caller may learn who it is and read the API's description.
    if route.method == Get && matches!(r, Resource::Me | Resource::OpenApi) {
        return Decision::Allowed;
    }
    if let Caller::Ticket(t) = caller {
        return ticket_permits(t, route, origin);
    }
    if caller.has(Scope::Admin) {
        return Decision::Allowed;
    }
    if caller.has(Scope::Read) && route.method == Get && *r != Resource::Keys {
        return Decision::Allowed;
    }
    let connect_route = matches!(
        (route.method, r),
        (Get, Resource::Settings)
            | (Post, Resource::Validate)
            | (Post, Resource::Connections)
            | (Post, Resource::Tickets)
    );
    if caller.has(Scope::Connect) && connect_route {
        return Decision::Allowed;
    }
    Decision::Forbidden(if route.method == Get {
        "This needs the 'read' or 'admin' scope."
    } else if connect_route {
        "This needs the 'connect' or 'admin' scope."
    } else {
        "This needs the 'admin' scope."
    })
}

fn ticket_permits(t: &TicketGrant, route: &Route, origin: Option<&str>) -> Decision {
    use ApiMethod::*;
    if let Some(bound) = &t.origin {
        if origin != Some(bound.as_str()) {
            return Decision::Forbidden(
                "This connect ticket is bound to another origin; mint one for this page.",
            );
        }
    }
    match (route.method, &route.resource) {
        (Get, Resource::Settings) | (Post, Resource::Validate) => Decision::Allowed,
        (Post, Resource::Connections) if !t.claimed => Decision::Allowed,
        (Post, Resource::Connections) => Decision::Forbidden(
            "This connect ticket has already connected an instance; mint a new one to connect another.",
        ),
        (Get, Resource::Connection(id)) if t.connection_id.as_deref() == Some(id.as_str()) => {
            Decision::Allowed
        }
        _ => Decision::Forbidden(
            "A connect ticket allows only the connect wizard's calls and reading the connection it created.",
        ),
    }
}

/// Connects one ticket may try (each refused one frees the ticket for the
/// admin to correct a field, and counts).
pub const TICKET_CONNECT_ATTEMPTS: u32 = 5;

/// The longest a ticket lives, and the default.
pub const TICKET_MAX_SECS: i64 = 900;
pub const TICKET_DEFAULT_SECS: i64 = 600;
pub const TICKET_MIN_SECS: i64 = 30;

/// An `Origin` as browsers send it: `scheme://host[:port]`, lower case,
/// nothing after. `None` for anything else.
pub fn normalize_origin(input: &str) -> Option<String> {
    let s = input.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, rest) = s.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (h, Some(p)),
        _ => (rest, None),
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    (host_ok && port_ok).then_some(s)
}

/// What failed credentials are counted under: the IPv4 address, or the
/// IPv6 /64 (one host usually holds a whole /64, so counting per address
/// would let it rotate through them).
pub fn failure_key(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Ok(std::net::IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => ip.to_string(),
    }
}

/// The shortest `ADMIN_TOKEN` the worker accepts: 32 characters (24
/// random bytes in base64). A shorter one is refused as a credential, so a
/// guessable token never opens the deployment.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// Why a configured `ADMIN_TOKEN` cannot be used, for the refusal's message.
pub fn admin_token_problem(configured: Option<&str>) -> Option<&'static str> {
    match configured {
        None => Some("The worker has no ADMIN_TOKEN configured (wrangler secret put ADMIN_TOKEN)."),
        Some(t) if t.chars().count() < MIN_ADMIN_TOKEN_CHARS => Some(
            "The worker's ADMIN_TOKEN is shorter than 32 characters and is refused: set a longer one (wrangler secret put ADMIN_TOKEN; `head -c 24 /dev/urandom | base64` makes one).",
        ),
        Some(_) => None,
    }
}

/// Admin-token attempts in flight from one address allowed beyond the
/// failure limit before a check waits for the window: a page's burst of
/// calls with the right token passes, while a burst of guesses has at most
/// the limit plus this many checked.
pub const RESERVED_SLACK: u32 = 40;

/// The failure counter's key for the whole deployment (no address is `*`).
pub const DEPLOYMENT_FAILURE_KEY: &str = "*";
/// Refused credentials written to the audit log one by one, per window and
/// deployment-wide; the rest are counted and summarised once the window
/// ends ("N more refused from ADDR"), so a flood from many addresses
/// cannot fill D1 or hold its one writer.
pub const AUDITED_FAILURES_PER_WINDOW: u32 = 100;
/// Summaries of ended windows written one address each per cron run; the
/// addresses beyond share one entry.
pub const FAILURE_SUMMARIES_PER_SWEEP: u32 = 50;

/// The audit target of a summary: how many refusals were not written one
/// by one.
pub fn refusals_summary(more: u64, addresses: u64) -> String {
    match addresses {
        0 | 1 => format!("{more} more refused in the window (counted, not written one by one)"),
        n => format!(
            "{more} more refused from {n} other addresses (counted, not written one by one)"
        ),
    }
}

/// Failed credentials from one client address in the current window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureCount {
    pub window_start: i64,
    pub failures: u32,
}

/// At most `limit` failed credentials per address in a window of
/// `window_secs`, then 429 until the window ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailurePolicy {
    pub limit: u32,
    pub window_secs: i64,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        FailurePolicy {
            limit: 10,
            window_secs: 300,
        }
    }
}

impl FailurePolicy {
    /// Seconds until this address may try again, when it may not now.
    pub fn blocked_for(&self, count: Option<FailureCount>, now: i64) -> Option<u64> {
        let c = count?;
        let ends = c.window_start + self.window_secs;
        (c.failures >= self.limit && now < ends).then(|| (ends - now).max(1) as u64)
    }

    /// The count after one more failure at `now` (a new window once the
    /// last one has ended).
    pub fn after_failure(&self, count: Option<FailureCount>, now: i64) -> FailureCount {
        match count {
            Some(c) if now < c.window_start + self.window_secs => FailureCount {
                window_start: c.window_start,
                failures: c.failures.saturating_add(1),
            },
            _ => FailureCount {
                window_start: now,
                failures: 1,
            },
        }
    }
}

/// A key as `GET /keys` lists it: never the key itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub scopes: Scopes,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyList {
    pub keys: Vec<KeyInfo>,
}

/// `POST /keys`'s answer: the only time the key itself is shown. Read only:
/// a `Secret` is never serialized (the worker writes the key explicitly).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub info: KeyInfo,
    pub key: crate::secret::Secret,
}

/// One audit-log entry as `GET /audit` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: String,
    pub at: String,
    pub actor: Actor,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub ip: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

/// How much of a sink a caller is shown: a receiver URL's path or query can
/// hold a capability (a token in the URL), and a receiver's answer anything,
/// so only admins see them whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkDetail {
    Whole,
    ForReaders,
}

impl SinkDetail {
    pub fn for_caller(caller: &Caller) -> SinkDetail {
        if caller.scopes().contains(&Scope::Admin) {
            SinkDetail::Whole
        } else {
            SinkDetail::ForReaders
        }
    }
}

/// What the hosted page offers a caller with these scopes. The worker
/// checks every call whatever the page shows: this only keeps the page from
/// offering what would be refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageSections {
    /// The connect wizard, first on the page.
    pub wizard: bool,
    pub connections: bool,
    pub keys: bool,
    pub sinks: bool,
    /// Whether the sinks' view offers adding, changing and deleting.
    pub sinks_change: bool,
    pub audit: bool,
}

impl PageSections {
    pub fn for_scopes(scopes: &[Scope]) -> PageSections {
        let admin = scopes.contains(&Scope::Admin);
        let read = admin || scopes.contains(&Scope::Read);
        PageSections {
            wizard: admin || scopes.contains(&Scope::Connect),
            connections: read,
            keys: admin,
            sinks: read,
            sinks_change: admin,
            audit: read,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::routes::resolve;
    use crate::api::routes::Resolution;

    #[test]
    fn an_admin_token_shorter_than_32_characters_is_refused_with_what_to_do() {
        assert!(admin_token_problem(Some(&"x".repeat(32))).is_none());
        let short = admin_token_problem(Some("hunter2")).unwrap_or_default();
        assert!(short.contains("32 characters") && short.contains("wrangler secret put"));
        assert!(admin_token_problem(None).is_some());
        assert!(refusals_summary(7, 3).contains("7 more refused from 3"));
    }

    fn route(method: &str, path: &str) -> Route {
        match resolve(method, path) {
            Resolution::Found(r) => r,
            other => panic!("{method} {path}: {other:?}"),
        }
    }

    fn key(scopes: &[Scope]) -> Caller {
        Caller::Key {
            id: "k".into(),
            name: "n".into(),
            scopes: Scopes::new(scopes.to_vec()).unwrap(),
        }
    }

    fn allowed(c: &Caller, m: &str, p: &str) -> bool {
        permits(c, &route(m, p), None) == Decision::Allowed
    }

    #[test]
    fn scopes_decide_each_route() {
        let read = key(&[Scope::Read]);
        let connect = key(&[Scope::Connect]);
        let admin = key(&[Scope::Admin]);
        for c in [&Caller::AdminToken, &admin] {
            assert!(allowed(c, "DELETE", "connections/x"));
            assert!(allowed(c, "POST", "keys"));
            assert!(allowed(c, "GET", "keys"));
        }
        assert!(allowed(&read, "GET", "connections/x/events"));
        assert!(allowed(&read, "GET", "audit"));
        assert!(!allowed(&read, "GET", "keys"));
        assert!(!allowed(&read, "POST", "connections/x/pull"));
        assert!(!allowed(&read, "POST", "connections"));
        assert!(allowed(&connect, "GET", "settings"));
        assert!(allowed(&connect, "POST", "validate"));
        assert!(allowed(&connect, "POST", "connections"));
        assert!(allowed(&connect, "POST", "tickets"));
        assert!(!allowed(&connect, "GET", "connections"));
        assert!(!allowed(&connect, "DELETE", "keys/k"));
        // One alert, as the page's shared links read it: readers only.
        assert!(allowed(&read, "GET", "alerts/al_1"));
        assert!(!allowed(&connect, "GET", "alerts/al_1"));
        let both = key(&[Scope::Read, Scope::Connect]);
        assert!(allowed(&both, "GET", "connections") && allowed(&both, "POST", "connections"));
        assert!(!allowed(&both, "PATCH", "connections/x"));
        assert_eq!(
            permits(&read, &route("DELETE", "connections/x"), None),
            Decision::Forbidden("This needs the 'admin' scope.")
        );
    }

    #[test]
    fn a_ticket_allows_the_wizard_and_its_own_connection_only() {
        let mut t = TicketGrant {
            id: "t".into(),
            origin: Some("https://portal.example".into()),
            minted_by: "key:k1".into(),
            connection_id: None,
            claimed: false,
        };
        let at = |t: &TicketGrant, m: &str, p: &str, o: Option<&str>| {
            permits(&Caller::Ticket(t.clone()), &route(m, p), o) == Decision::Allowed
        };
        let portal = Some("https://portal.example");
        assert!(at(&t, "GET", "settings", portal));
        assert!(at(&t, "POST", "validate", portal));
        assert!(at(&t, "POST", "connections", portal));
        assert!(!at(&t, "GET", "settings", None));
        assert!(!at(&t, "GET", "settings", Some("https://evil.example")));
        assert!(!at(&t, "POST", "tickets", portal));
        assert!(!at(&t, "GET", "connections", portal));
        t.claimed = true;
        t.connection_id = Some("c1".into());
        assert!(!at(&t, "POST", "connections", portal));
        assert!(at(&t, "GET", "connections/c1", portal));
        assert!(!at(&t, "GET", "connections/c2", portal));
        assert!(!at(&t, "GET", "connections/c1/events", portal));
        assert!(!at(&t, "DELETE", "connections/c1", portal));
        t.origin = None;
        assert!(at(&t, "GET", "settings", Some("https://anywhere.example")));
        assert!(at(&t, "GET", "me", None));
    }

    #[test]
    fn connections_count_against_the_key_that_made_them_or_minted_their_ticket() {
        let key = |scopes: &[Scope]| Caller::Key {
            id: "k1".into(),
            name: "portal".into(),
            scopes: Scopes(scopes.to_vec()),
        };
        let plain = MinterScope::NotAdmin;
        assert_eq!(
            connection_owner(&key(&[Scope::Connect]), plain).as_deref(),
            Some("key:k1")
        );
        assert_eq!(
            connection_owner(&key(&[Scope::Admin, Scope::Connect]), plain),
            None
        );
        assert_eq!(connection_owner(&Caller::AdminToken, plain), None);
        let ticket = |minted_by: &str| {
            Caller::Ticket(TicketGrant {
                id: "t".into(),
                origin: None,
                minted_by: minted_by.into(),
                connection_id: None,
                claimed: false,
            })
        };
        assert_eq!(
            connection_owner(&ticket("key:k1"), plain).as_deref(),
            Some("key:k1")
        );
        // A ticket an admin key minted is the admin's: not counted.
        assert_eq!(
            connection_owner(&ticket("key:k1"), MinterScope::Admin),
            None
        );
        assert_eq!(
            connection_owner(&ticket("admin_token:admin token"), plain),
            None
        );
        assert_eq!(connection_owner(&ticket("access:sub-1"), plain), None);
        // Every key is limited per minute, its tickets under it; admins are not.
        assert_eq!(
            rate_limit_key(&key(&[Scope::Admin])).as_deref(),
            Some("key:k1")
        );
        assert_eq!(rate_limit_key(&ticket("key:k1")).as_deref(), Some("key:k1"));
        assert_eq!(rate_limit_key(&Caller::AdminToken), None);
        let access = Caller::Access {
            id: "sub".into(),
            name: "ann@example.com".into(),
        };
        assert_eq!(rate_limit_key(&access), None);
    }

    #[test]
    fn the_caller_limit_binding_allows_what_the_refusal_says() {
        let toml = include_str!("../../../../wrangler.toml");
        let at = toml.find("name = \"CALLER_LIMIT\"").unwrap();
        let binding = toml[at..].lines().take(3).collect::<Vec<_>>().join("\n");
        assert!(
            binding.contains(&format!("limit = {CALLS_PER_CALLER_MINUTE}, period = 60")),
            "{binding}"
        );
    }

    #[test]
    fn minted_credentials_are_long_random_and_stored_as_sha256() {
        let key = CredentialKind::ApiKey.mint(&[7u8; 32]);
        assert!(key.expose().starts_with("snck_"));
        assert_eq!(key.expose().len(), 5 + 43);
        assert_eq!(format!("{key:?}"), "[redacted]");
        let Presented::Minted(kind, hash) = presented(key.expose()) else {
            panic!("not read as minted")
        };
        assert_eq!(kind, CredentialKind::ApiKey);
        assert_eq!(hash.as_str().len(), 64);
        assert_ne!(hash.as_str(), key.expose());
        assert_eq!(
            CredentialHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(matches!(
            presented("snct_x"),
            Presented::Minted(CredentialKind::Ticket, _)
        ));
        assert!(matches!(presented(" admin "), Presented::Other("admin")));
        assert_eq!(
            Scopes::from_stored("read,admin").unwrap().stored(),
            "admin,read"
        );
        assert!(Scopes::from_stored("").is_none());
        assert!(Scopes::from_stored("admin,root").is_none());
    }

    #[test]
    fn origins_normalize_or_are_refused() {
        assert_eq!(
            normalize_origin("https://Portal.Example/").as_deref(),
            Some("https://portal.example")
        );
        assert_eq!(
            normalize_origin("http://127.0.0.1:8789").as_deref(),
            Some("http://127.0.0.1:8789")
        );
        for bad in [
            "portal.example",
            "ftp://x",
            "https://",
            "https://a/b",
            "https://a?b",
            "https://u@a",
            "https://a:99999999",
            "https://a:",
            "javascript://x",
        ] {
            assert_eq!(normalize_origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        assert_eq!(failure_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(
            failure_key("2001:db8:1:2:bbbb:cccc:dddd:eeee"),
            "2001:db8:1:2::/64"
        );
        assert_eq!(failure_key("203.0.113.9"), "203.0.113.9");
        assert_eq!(failure_key("unknown"), "unknown");
    }

    #[test]
    fn failures_block_after_the_limit_until_the_window_ends() {
        let p = FailurePolicy::default();
        let mut c = None;
        for i in 0..p.limit {
            assert_eq!(p.blocked_for(c, 1000 + i as i64), None);
            c = Some(p.after_failure(c, 1000 + i as i64));
        }
        assert_eq!(p.blocked_for(c, 1010), Some(290));
        assert_eq!(p.blocked_for(c, 1299), Some(1));
        assert_eq!(p.blocked_for(c, 1300), None);
        let next = p.after_failure(c, 1300);
        assert_eq!(
            next,
            FailureCount {
                window_start: 1300,
                failures: 1
            }
        );
    }

    #[test]
    fn the_page_reads_keys_and_audit_entries_as_the_worker_writes_them() {
        let created: CreatedKey = serde_json::from_value(serde_json::json!({
            "id": "k1", "name": "portal", "scopes": ["connect", "read"],
            "created_at": "2026-11-27T00:00:00Z", "expires_at": null,
            "last_used_at": null, "key": "snck_secret",
        }))
        .unwrap();
        assert_eq!(created.key.expose(), "snck_secret");
        assert!(created.info.scopes.has(Scope::Connect) && !created.info.scopes.has(Scope::Admin));
        assert!(!format!("{created:?}").contains("snck_secret"));
        let info = KeyList {
            keys: vec![created.info.clone()],
        };
        let back: KeyList = serde_json::from_value(serde_json::to_value(&info).unwrap()).unwrap();
        assert_eq!(back, info);
        let page = AuditPage {
            entries: vec![AuditEntry {
                id: "a".into(),
                at: "2026-11-27T00:00:00Z".into(),
                actor: Caller::AdminToken.actor(),
                action: "key.create".into(),
                target: Some("k1".into()),
                outcome: "201".into(),
                ip: None,
            }],
            next_cursor: Some("c".into()),
        };
        let back: AuditPage = serde_json::from_value(serde_json::to_value(&page).unwrap()).unwrap();
        assert_eq!(back, page);
    }

    #[test]
    fn the_page_offers_each_scope_what_its_calls_allow() {
        let admin = PageSections::for_scopes(&[Scope::Admin]);
        assert!(admin.wizard && admin.connections && admin.keys && admin.sinks_change);
        let read = PageSections::for_scopes(&[Scope::Read]);
        assert!(read.connections && read.sinks && read.audit);
        assert!(!read.wizard && !read.keys && !read.sinks_change);
        let connect = PageSections::for_scopes(&[Scope::Connect]);
        assert_eq!(
            connect,
            PageSections {
                wizard: true,
                ..PageSections::default()
            }
        );
        let both = PageSections::for_scopes(&[Scope::Connect, Scope::Read]);
        assert!(both.wizard && both.connections && !both.keys);
    }
}
