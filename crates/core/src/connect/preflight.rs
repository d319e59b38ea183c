//! The connect check as a small state machine. The host calls `start()`, sends
//! each request it gets, feeds the answer to `handle_response()` and stops at
//! `Done` or `Failed`. At most four round trips:
//!
//! 1. OAuth only: the password grant (the password is used here and nowhere else).
//! 2. One Batch API call holding the admin-role check, the release properties
//!    and a one-record read of each table the pulls use.
//! 3. and 4. Only where the Batch API is missing (old releases): the role
//!    check and the release, one call each; table access is then checked by
//!    the first pull and the connection carries a warning saying so.

use serde::Deserialize;

use crate::connect::input::{AuthMethod, ConnectCredentials, OAuthClient};
use crate::connect::warning::{
    Hardening, Warning, WarningCode, BASIC_AUTH_RESTRICTION, PASSWORD_GRANT_OFF,
};
use crate::http::{HttpRequest, HttpResponse};
use crate::problem::{Problem, ProblemCode};
use crate::secret::{AccessToken, Password, RefreshToken};
use crate::servicenow::answers::{classify_failure, is_html};
use crate::servicenow::batch;
use crate::servicenow::instance_url::InstanceUrl;
use crate::servicenow::oauth::{self, SHORT_LIFESPAN_SECS};
use crate::servicenow::release::{Release, ReleaseRange};
use crate::servicenow::table::{self, ApiAuth, PULL_TABLES};

/// What must be kept to call the instance later.
#[derive(Clone, Debug)]
pub enum Credential {
    OAuth {
        client: OAuthClient,
        refresh_token: RefreshToken,
        access_token: AccessToken,
        access_expires_at: i64,
    },
    /// The client-credentials grant: no refresh token, the grant is asked
    /// again before the access token expires.
    ClientCredentials {
        client: OAuthClient,
        access_token: AccessToken,
        access_expires_at: i64,
    },
    Basic {
        password: Password,
    },
}

#[derive(Clone, Debug)]
pub struct PreflightReport {
    pub credential: Credential,
    pub release: Release,
    /// `glide.war` as read, for support.
    pub build: String,
    pub warnings: Vec<Warning>,
    pub round_trips: u32,
    /// The user the credentials act as (`sys_user.user_name` of
    /// `gs.getUserID()`), when the instance said.
    pub user_name: Option<String>,
    /// The hardening settings, read in the same Batch API call (none
    /// without a Batch API: the first pull reads them).
    pub posture: Option<crate::watch::posture::Readings>,
}

#[derive(Debug)]
pub enum Step {
    Send(HttpRequest),
    /// A passing refusal (a 429 asking for a short wait, one 5xx): send the
    /// same request again after this many milliseconds, within the connect.
    Retry {
        after_ms: u64,
        request: HttpRequest,
    },
    Done(Box<PreflightReport>),
    Failed(Problem),
}

#[derive(Clone, Debug)]
pub struct PreflightInput {
    pub instance: InstanceUrl,
    pub credentials: ConnectCredentials,
    pub releases: ReleaseRange,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Token,
    Batch,
    Role,
    Release,
    Finished,
}

pub struct Preflight {
    input: PreflightInput,
    now: i64,
    stage: Stage,
    round_trips: u32,
    credential: Option<Credential>,
    warnings: Vec<Warning>,
    /// The request in flight, to send again after a passing refusal.
    in_flight: Option<HttpRequest>,
    retries: u32,
    /// `user_name` and `web_service_access_only` of the session's user.
    whoami: Option<(String, bool)>,
    posture: Option<crate::watch::posture::Readings>,
}

pub const MAX_ROUND_TRIPS: u32 = 4;
/// Passing refusals a connect waits out before it reports them.
pub const MAX_RETRIES: u32 = 2;
/// The longest Retry-After a connect waits out; a longer one is answered
/// `rate_limited` with the time to wait.
pub const SHORT_WAIT_SECS: u64 = 5;

impl Preflight {
    pub fn new(input: PreflightInput, now: i64) -> Self {
        Preflight {
            input,
            now,
            stage: Stage::Token,
            round_trips: 0,
            credential: None,
            warnings: Vec::new(),
            in_flight: None,
            retries: 0,
            whoami: None,
            posture: None,
        }
    }

    pub fn round_trips(&self) -> u32 {
        self.round_trips
    }

    pub fn start(&mut self) -> Step {
        match self.input.credentials.clone() {
            ConnectCredentials::Oauth {
                username,
                password,
                client,
            } => {
                self.stage = Stage::Token;
                self.send(oauth::password_grant(
                    &self.input.instance,
                    &client,
                    &username,
                    &password,
                ))
            }
            ConnectCredentials::ClientCredentials { client } => {
                self.stage = Stage::Token;
                self.send(oauth::client_credentials_grant(
                    &self.input.instance,
                    &client,
                ))
            }
            ConnectCredentials::Basic { password, .. } => {
                self.credential = Some(Credential::Basic { password });
                self.batch()
            }
        }
    }

    fn method(&self) -> AuthMethod {
        self.input.credentials.method()
    }

    /// The request could not be sent or got no answer.
    pub fn handle_unreachable(&mut self, why: &str) -> Step {
        self.fail(Problem::with_context(
            ProblemCode::InstanceUnreachable,
            format!("No answer from {} ({why}).", self.input.instance),
        ))
    }

    pub fn handle_response(&mut self, resp: &HttpResponse) -> Step {
        if let Some(step) = self.passing_refusal(resp) {
            return step;
        }
        match self.stage {
            Stage::Token => self.on_token(resp),
            Stage::Batch => self.on_batch(resp),
            Stage::Role => self.on_role(resp),
            Stage::Release => self.on_release(resp),
            Stage::Finished => self.fail(Problem::new(ProblemCode::Internal)),
        }
    }

    fn send(&mut self, req: HttpRequest) -> Step {
        self.round_trips += 1;
        if self.round_trips > MAX_ROUND_TRIPS {
            return self.fail(Problem::new(ProblemCode::Internal));
        }
        self.in_flight = Some(req.clone());
        Step::Send(req)
    }

    /// A 429 with a Retry-After of a few seconds, or a 5xx, is waited out
    /// (twice at most) rather than failing the admin's connect.
    fn passing_refusal(&mut self, resp: &HttpResponse) -> Option<Step> {
        if self.retries >= MAX_RETRIES || is_html(resp) {
            return None;
        }
        let after_ms = match resp.status {
            429 => crate::servicenow::answers::retry_after(resp, self.now)
                .filter(|s| *s <= SHORT_WAIT_SECS)
                .map(|s| (s * 1000).max(250))?,
            500 | 502 | 503 | 504 => 1_000,
            _ => return None,
        };
        let request = self.in_flight.clone()?;
        self.retries += 1;
        Some(Step::Retry { after_ms, request })
    }

    fn fail(&mut self, p: Problem) -> Step {
        self.stage = Stage::Finished;
        if p.is(ProblemCode::CredentialsRejected) {
            return Step::Failed(p.advise(self.method().rejected_advice()));
        }
        Step::Failed(p)
    }

    fn auth(&self) -> Option<ApiAuth> {
        match (&self.credential, &self.input.credentials) {
            (
                Some(Credential::OAuth { access_token, .. })
                | Some(Credential::ClientCredentials { access_token, .. }),
                _,
            ) => Some(ApiAuth::Bearer(access_token.clone())),
            (_, ConnectCredentials::Basic { username, password }) => Some(ApiAuth::Basic {
                username: username.clone(),
                password: password.clone(),
            }),
            _ => None,
        }
    }

    fn user_label(&self) -> String {
        match (&self.whoami, self.input.credentials.username()) {
            (Some((name, _)), _) => format!("The user {name}"),
            (None, Some(name)) => format!("The user {name}"),
            (None, None) => "The OAuth application's user".into(),
        }
    }

    /// The admin-role check of the token's (or the basic account's) own
    /// user: ServiceNow evaluates `gs.getUserID()` for the session, so no
    /// typed user ID (which may hold `^`, the query's separator) enters the
    /// encoded query.
    fn role_path(&self) -> String {
        table::table_path(
            "sys_user_has_role",
            &[
                (
                    "sysparm_query",
                    "user=javascript:gs.getUserID()^role.name=admin",
                ),
                ("sysparm_limit", "1"),
                ("sysparm_fields", "sys_id"),
            ],
        )
    }

    fn release_path() -> String {
        table::table_path(
            "sys_properties",
            &[
                (
                    "sysparm_query",
                    &format!("nameINglide.war,glide.buildname,{PASSWORD_GRANT_OFF},{BASIC_AUTH_RESTRICTION}"),
                ),
                ("sysparm_fields", "name,value"),
                ("sysparm_limit", "10"),
            ],
        )
    }

    fn on_token(&mut self, resp: &HttpResponse) -> Step {
        let grant = match oauth::parse_token_response(resp, self.now) {
            Ok(g) => g,
            Err(p) => return self.fail(p),
        };
        let Some(client) = self.input.credentials.client().cloned() else {
            return self.fail(Problem::new(ProblemCode::Internal));
        };
        let refresh_token = match (self.method(), grant.refresh_token.clone()) {
            (AuthMethod::ClientCredentials, _) => None,
            (_, Some(r)) => Some(r),
            (_, None) => {
                return self.fail(Problem::with_context(
                    ProblemCode::CredentialsRejected,
                    "ServiceNow issued no refresh token, so the connection could not stay connected. Check that the OAuth endpoint issues refresh tokens (Refresh Token Lifespan above 0).",
                ))
            }
        };
        // ServiceNow reports the lifespan minus one second: 3,600 s shows as 3,599.
        if grant.expires_in + 1 < SHORT_LIFESPAN_SECS {
            self.warnings.push(Warning {
                code: WarningCode::TokenLifespanShort,
                message: format!(
                    "The access token lives {} s. Raise the Access Token Lifespan of the OAuth application to at least 3,600 s (System OAuth > Application Registry) so the connector refreshes less often.",
                    grant.expires_in + 1
                ),
            });
        }
        let access_expires_at = grant.expires_at(self.now);
        self.credential = Some(match refresh_token {
            Some(refresh_token) => Credential::OAuth {
                client,
                refresh_token,
                access_expires_at,
                access_token: grant.access_token,
            },
            None => Credential::ClientCredentials {
                client,
                access_expires_at,
                access_token: grant.access_token,
            },
        });
        self.batch()
    }

    fn batch(&mut self) -> Step {
        self.stage = Stage::Batch;
        // The posture's reads ride along: its property read also brings
        // the release and the hardening switches, its `whoami` the user.
        let mut items = vec![("role".to_string(), self.role_path())];
        items.extend(crate::watch::posture::batch_items(&[
            "glide.war",
            "glide.buildname",
        ]));
        for t in PULL_TABLES {
            let path = table::table_path(
                t,
                &[
                    ("sysparm_limit", "1"),
                    ("sysparm_fields", "sys_id"),
                    ("sysparm_no_count", "true"),
                ],
            );
            items.push((format!("table:{t}"), path));
        }
        let Some(auth) = self.auth() else {
            return self.fail(Problem::new(ProblemCode::Internal));
        };
        let req = batch::request(&self.input.instance, &auth, "preflight", &items);
        self.send(req)
    }

    fn on_batch(&mut self, resp: &HttpResponse) -> Step {
        if !is_html(resp) && matches!(resp.status, 400 | 404 | 405) {
            // No Batch API on this release: check role and release one by one.
            self.warnings.push(Warning {
                code: WarningCode::TableAccessUnchecked,
                message: "This instance has no Batch API, so read access to each table is checked by the first pull instead of at connect.".into(),
            });
            self.stage = Stage::Role;
            let Some(auth) = self.auth() else {
                return self.fail(Problem::new(ProblemCode::Internal));
            };
            let req = table::get(&self.input.instance, &self.role_path(), &auth);
            return self.send(req);
        }
        if resp.status != 200 || is_html(resp) {
            return self.fail(classify_failure(resp, "the connect check", self.now));
        }
        let items = match batch::parse(resp) {
            Some(items) => items,
            None => {
                return self.fail(Problem::with_context(
                    ProblemCode::NotServicenow,
                    "The Batch API answer could not be read.",
                ))
            }
        };
        let find = |id: &str| items.iter().find(|(i, _)| i == id).map(|(_, r)| r);
        // Item-level refusals that concern the whole call come first.
        for (_, r) in &items {
            if r.status == 401 || r.status == 429 || is_html(r) {
                return self.fail(classify_failure(r, "the connect check", self.now));
            }
        }
        self.posture = Some(crate::watch::posture::readings(&items));
        // Who the session is: optional, an instance may hide sys_user fields.
        if let Some(rows) = find("whoami")
            .filter(|r| r.status == 200)
            .and_then(result_rows)
        {
            self.whoami = rows.first().and_then(|u| {
                let name = u.get("user_name")?.as_str()?.to_string();
                let ws_only =
                    u.get("web_service_access_only").and_then(|v| v.as_str()) == Some("true");
                Some((name, ws_only))
            });
        }
        match find("role") {
            Some(r) => {
                if let Err(p) = self.check_role(r) {
                    return self.fail(p);
                }
            }
            None => {
                return self.fail(Problem::with_context(
                    ProblemCode::NotServicenow,
                    "The Batch API skipped the role check.",
                ))
            }
        }
        for t in PULL_TABLES {
            match find(&format!("table:{t}")) {
                Some(r) if r.status == 200 => {}
                Some(r) if r.status == 403 || r.status == 404 => {
                    return self.fail(Problem::with_context(
                        ProblemCode::TableAccessDenied,
                        format!("The user cannot read the table {t} (HTTP {}).", r.status),
                    ))
                }
                Some(r) => return self.fail(classify_failure(r, &format!("reading {t}"), self.now)),
                None => return self.fail(Problem::with_context(ProblemCode::InstanceUnreachable, format!("The instance did not serve the read of {t} (batch limit reached). Try again."))),
            }
        }
        match find("properties") {
            Some(r) => self.finish_release(r),
            None => self.fail(Problem::with_context(
                ProblemCode::NotServicenow,
                "The Batch API skipped the release check.",
            )),
        }
    }

    fn check_role(&self, r: &HttpResponse) -> Result<(), Problem> {
        let not_admin = || {
            Problem::with_context(
                ProblemCode::NotAdmin,
                format!("{} does not have the admin role.", self.user_label()),
            )
        };
        match r.status {
            200 => match result_rows(r) {
                Some(rows) if !rows.is_empty() => Ok(()),
                Some(_) => Err(not_admin()),
                None => Err(Problem::with_context(
                    ProblemCode::NotServicenow,
                    "The role check's answer could not be read.",
                )),
            },
            // v1 says "No Record found"; a user who may not read roles is no admin.
            403 | 404 => Err(not_admin()),
            _ => Err(classify_failure(r, "the admin role check", self.now)),
        }
    }

    fn on_role(&mut self, resp: &HttpResponse) -> Step {
        if let Err(p) = self.check_role(resp) {
            return self.fail(p);
        }
        self.stage = Stage::Release;
        let Some(auth) = self.auth() else {
            return self.fail(Problem::new(ProblemCode::Internal));
        };
        let req = table::get(&self.input.instance, &Self::release_path(), &auth);
        self.send(req)
    }

    fn on_release(&mut self, resp: &HttpResponse) -> Step {
        self.finish_release(resp)
    }

    fn finish_release(&mut self, r: &HttpResponse) -> Step {
        if r.status != 200 {
            return self.fail(classify_failure(r, "the release check", self.now));
        }
        let rows = result_rows(r).unwrap_or_default();
        let prop = |name: &str| {
            rows.iter()
                .find(|p| p.get("name").and_then(|v| v.as_str()) == Some(name))
                .and_then(|p| p.get("value").and_then(|v| v.as_str()))
                .map(str::to_string)
        };
        let war = prop("glide.war");
        let release = war
            .as_deref()
            .and_then(Release::from_glide_war)
            .or_else(|| {
                prop("glide.buildname")
                    .as_deref()
                    .and_then(Release::from_build_name)
            });
        let Some(release) = release else {
            return self.fail(Problem::with_context(
                ProblemCode::ReleaseUnsupported,
                "The release could not be read from glide.war or glide.buildname.",
            ));
        };
        if !self.input.releases.contains(release) {
            return self.fail(Problem::with_context(
                ProblemCode::ReleaseUnsupported,
                format!(
                    "The instance runs {}; this connector accepts {} to {}.",
                    release.name(),
                    self.input.releases.oldest.name(),
                    self.input.releases.newest.name()
                ),
            ));
        }
        let Some(credential) = self.credential.clone() else {
            return self.fail(Problem::new(ProblemCode::Internal));
        };
        let switched_on =
            |name: &str| prop(name).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let hardening = Hardening {
            password_grant_off: switched_on(PASSWORD_GRANT_OFF),
            basic_auth_restricted: switched_on(BASIC_AUTH_RESTRICTION),
            web_service_only: self.whoami.as_ref().map(|(_, ws)| *ws),
        };
        self.warnings.extend(hardening.warnings(self.method()));
        self.stage = Stage::Finished;
        Step::Done(Box::new(PreflightReport {
            credential,
            release,
            build: war.unwrap_or_default(),
            warnings: std::mem::take(&mut self.warnings),
            round_trips: self.round_trips,
            user_name: self.whoami.as_ref().map(|(n, _)| n.clone()),
            posture: self.posture.take(),
        }))
    }
}

fn result_rows(r: &HttpResponse) -> Option<Vec<serde_json::Map<String, serde_json::Value>>> {
    #[derive(Deserialize)]
    struct Page {
        result: Vec<serde_json::Map<String, serde_json::Value>>,
    }
    serde_json::from_slice::<Page>(&r.body)
        .ok()
        .map(|p| p.result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::servicenow::instance_url::{parse, HostPolicy};
    use base64::Engine;

    fn input(method: AuthMethod) -> PreflightInput {
        let client = OAuthClient {
            client_id: "cid".into(),
            client_secret: Secret::new("sec"),
        };
        let (username, password) = ("svc".to_string(), Secret::new("pw"));
        PreflightInput {
            instance: parse("acme", &HostPolicy::default()).unwrap(),
            credentials: match method {
                AuthMethod::Oauth => ConnectCredentials::Oauth {
                    username,
                    password,
                    client,
                },
                AuthMethod::ClientCredentials => ConnectCredentials::ClientCredentials { client },
                AuthMethod::Basic => ConnectCredentials::Basic { username, password },
            },
            releases: ReleaseRange::default(),
        }
    }

    fn json(status: u16, body: serde_json::Value) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(&body).unwrap(),
        }
    }

    fn token(expires_in: i64) -> HttpResponse {
        json(
            200,
            serde_json::json!({"access_token":"at","refresh_token":"rt","expires_in":expires_in,"token_type":"Bearer","scope":"useraccount"}),
        )
    }

    fn item(id: &str, status: u16, body: serde_json::Value) -> serde_json::Value {
        let raw = serde_json::to_vec(&body).unwrap();
        serde_json::json!({"id": id, "status_code": status, "status_text": "OK", "execution_time": 3,
            "headers": [{"name":"Content-Type","value":"application/json;charset=UTF-8"}],
            "body": base64::engine::general_purpose::STANDARD.encode(raw)})
    }

    fn batch_answer(role_rows: usize, table_status: u16, war: &str) -> HttpResponse {
        hardened_answer(role_rows, table_status, war, &[], false)
    }

    fn hardened_answer(
        role_rows: usize,
        table_status: u16,
        war: &str,
        switches_on: &[&str],
        web_service_only: bool,
    ) -> HttpResponse {
        let mut props = vec![
            serde_json::json!({"name":"glide.war","value":war}),
            serde_json::json!({"name":"glide.buildname","value":"Whatever"}),
        ];
        for name in switches_on {
            props.push(serde_json::json!({"name": name, "value": "true"}));
        }
        let mut items = vec![
            item(
                "role",
                200,
                serde_json::json!({"result": vec![serde_json::json!({"sys_id":"x"}); role_rows]}),
            ),
            item("properties", 200, serde_json::json!({ "result": props })),
            item(
                "whoami",
                200,
                serde_json::json!({"result":[{"user_name":"app.user","web_service_access_only": web_service_only.to_string()}]}),
            ),
        ];
        for (i, t) in PULL_TABLES.iter().enumerate() {
            let status = if i == 2 { table_status } else { 200 };
            items.push(item(
                &format!("table:{t}"),
                status,
                serde_json::json!({"result":[]}),
            ));
        }
        json(
            200,
            serde_json::json!({"batch_request_id":"preflight","serviced_requests":items,"unserviced_requests":[]}),
        )
    }

    fn drive(p: &mut Preflight, answers: Vec<HttpResponse>) -> (Vec<HttpRequest>, Step) {
        let mut sent = Vec::new();
        let mut step = p.start();
        let mut answers = answers.into_iter();
        while let Step::Send(req) = step {
            sent.push(req);
            match answers.next() {
                Some(a) => step = p.handle_response(&a),
                None => panic!(
                    "preflight asked for more than was scripted: {:?}",
                    sent.last()
                ),
            }
        }
        (sent, step)
    }

    #[test]
    fn oauth_connect_is_two_round_trips_and_keeps_no_password() {
        let mut p = Preflight::new(input(AuthMethod::Oauth), 1_000);
        let (sent, step) = drive(
            &mut p,
            vec![
                token(3599),
                batch_answer(1, 200, "glide-tokyo-07-08-2022__patch5"),
            ],
        );
        assert_eq!(sent.len(), 2);
        assert!(sent[0].url.ends_with("/oauth_token.do"));
        assert!(sent[1].url.ends_with("/api/now/v1/batch"));
        assert!(sent[1]
            .headers
            .iter()
            .any(|(k, v)| k == "Authorization" && v == "Bearer at"));
        let batch: serde_json::Value = serde_json::from_slice(&sent[1].body).unwrap();
        assert_eq!(
            batch["rest_requests"].as_array().unwrap().len(),
            6 + PULL_TABLES.len()
        );
        let Step::Done(report) = step else {
            panic!("{step:?}")
        };
        assert_eq!(report.round_trips, 2);
        assert_eq!(report.release.name(), "Tokyo");
        let posture = report
            .posture
            .as_ref()
            .expect("posture read in the same call");
        assert!(posture
            .properties
            .as_ref()
            .is_ok_and(|p| p.contains_key("glide.war")));
        assert!(
            report.warnings.is_empty(),
            "3,600 s shows as 3,599 and is long enough"
        );
        match &report.credential {
            Credential::OAuth {
                refresh_token,
                access_expires_at,
                ..
            } => {
                assert_eq!(refresh_token.expose(), "rt");
                assert_eq!(*access_expires_at, 1_000 + 3_599);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_role_check_asks_for_the_sessions_own_user_never_the_typed_id() {
        // A `^` in the user ID would start a new condition of the query.
        let mut hostile = input(AuthMethod::Basic);
        hostile.credentials = ConnectCredentials::Basic {
            username: "svc^NQrole.name=itil^ORuser_name!=x".into(),
            password: Secret::new("pw"),
        };
        let mut p = Preflight::new(hostile, 0);
        let (sent, _) = drive(&mut p, vec![batch_answer(1, 200, "glide-xanadu-x")]);
        let batch: serde_json::Value = serde_json::from_slice(&sent[0].body).unwrap();
        let role = batch["rest_requests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == "role")
            .unwrap();
        let url = role["url"].as_str().unwrap();
        let query: String = form_urlencoded::parse(url.split_once('?').unwrap().1.as_bytes())
            .find(|(k, _)| k == "sysparm_query")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        assert_eq!(query, "user=javascript:gs.getUserID()^role.name=admin");
        assert!(!url.contains("svc"), "{url}");
    }

    fn refused(status: u16, retry_after: Option<u64>) -> HttpResponse {
        let mut r = json(
            status,
            serde_json::json!({"error":{"message":"Too many requests","detail":null},"status":"failure"}),
        );
        if let Some(s) = retry_after {
            r.headers.push(("Retry-After".into(), s.to_string()));
        }
        r
    }

    #[test]
    fn a_short_retry_after_and_a_5xx_are_waited_out_within_the_connect() {
        let mut p = Preflight::new(input(AuthMethod::Oauth), 0);
        let Step::Send(token_req) = p.start() else {
            panic!()
        };
        let Step::Retry { after_ms, request } = p.handle_response(&refused(429, Some(2))) else {
            panic!("a 2 s Retry-After is waited out")
        };
        assert_eq!(after_ms, 2_000);
        assert_eq!(request.url, token_req.url);
        let Step::Send(batch_req) = p.handle_response(&token(3599)) else {
            panic!()
        };
        let Step::Retry { after_ms, request } = p.handle_response(&refused(503, None)) else {
            panic!("one 5xx is tried again")
        };
        assert_eq!(after_ms, 1_000);
        assert_eq!(request.body, batch_req.body);
        let Step::Done(report) = p.handle_response(&batch_answer(1, 200, "glide-xanadu-x")) else {
            panic!()
        };
        assert_eq!(
            report.round_trips, 2,
            "retries are not round trips of the check"
        );
    }

    #[test]
    fn a_long_retry_after_or_a_third_refusal_is_reported() {
        let mut p = Preflight::new(input(AuthMethod::Oauth), 0);
        p.start();
        let Step::Failed(problem) = p.handle_response(&refused(429, Some(120))) else {
            panic!("two minutes are not waited out")
        };
        assert!(problem.is(ProblemCode::RateLimited));
        assert_eq!(problem.retry_after, Some(120));

        let mut p = Preflight::new(input(AuthMethod::Basic), 0);
        p.start();
        for _ in 0..MAX_RETRIES {
            assert!(matches!(
                p.handle_response(&refused(500, None)),
                Step::Retry { .. }
            ));
        }
        assert!(matches!(
            p.handle_response(&refused(500, None)),
            Step::Failed(_)
        ));
    }

    #[test]
    fn short_lifespan_warns_and_basic_is_one_round_trip() {
        let mut p = Preflight::new(input(AuthMethod::Oauth), 0);
        let (_, step) = drive(
            &mut p,
            vec![token(1799), batch_answer(1, 200, "glide-xanadu-x")],
        );
        let Step::Done(r) = step else { panic!() };
        assert_eq!(r.warnings[0].code, WarningCode::TokenLifespanShort);

        let mut p = Preflight::new(input(AuthMethod::Basic), 0);
        let (sent, step) = drive(&mut p, vec![batch_answer(1, 200, "glide-xanadu-x")]);
        assert_eq!(sent.len(), 1);
        assert!(sent[0]
            .headers
            .iter()
            .any(|(k, v)| k == "Authorization" && v.starts_with("Basic ")));
        assert!(matches!(step, Step::Done(r) if matches!(r.credential, Credential::Basic { .. })));
    }

    #[test]
    fn failures_map_to_their_codes() {
        let cases: Vec<(AuthMethod, Vec<HttpResponse>, ProblemCode)> = vec![
            (
                AuthMethod::Oauth,
                vec![json(
                    401,
                    serde_json::json!({"error_description":"access_denied","error":"server_error"}),
                )],
                ProblemCode::CredentialsRejected,
            ),
            (
                AuthMethod::Basic,
                vec![json(
                    401,
                    serde_json::json!({"error":{"message":"User Not Authenticated"},"status":"failure"}),
                )],
                ProblemCode::CredentialsRejected,
            ),
            (
                AuthMethod::Oauth,
                vec![token(3599), batch_answer(0, 200, "glide-tokyo-x")],
                ProblemCode::NotAdmin,
            ),
            (
                AuthMethod::Oauth,
                vec![token(3599), batch_answer(1, 403, "glide-tokyo-x")],
                ProblemCode::TableAccessDenied,
            ),
            (
                AuthMethod::Oauth,
                vec![token(3599), batch_answer(1, 200, "no-family-here")],
                ProblemCode::ReleaseUnsupported,
            ),
            (
                AuthMethod::Basic,
                vec![HttpResponse {
                    status: 200,
                    headers: vec![("Content-Type".into(), "text/html".into())],
                    body: b"<html>".to_vec(),
                }],
                ProblemCode::InstanceHibernating,
            ),
            (
                AuthMethod::Basic,
                vec![json(
                    403,
                    serde_json::json!({"error":{"message":"User Not Authorized"},"status":"failure"}),
                )],
                ProblemCode::TableAccessDenied,
            ),
            (
                AuthMethod::Basic,
                vec![HttpResponse {
                    status: 429,
                    headers: vec![("Retry-After".into(), "9".into())],
                    body: vec![],
                }],
                ProblemCode::RateLimited,
            ),
        ];
        for (method, answers, want) in cases {
            let mut p = Preflight::new(input(method), 0);
            let (_, step) = drive(&mut p, answers);
            match step {
                Step::Failed(problem) => {
                    assert!(problem.is(want), "wanted {want}, got {problem:?}")
                }
                other => panic!("wanted {want}, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_release_outside_the_configured_range_is_refused() {
        let mut i = input(AuthMethod::Basic);
        i.releases = ReleaseRange::parse(Some("Eureka..Tokyo")).unwrap();
        let mut p = Preflight::new(i, 0);
        let (_, step) = drive(
            &mut p,
            vec![batch_answer(1, 200, "glide-xanadu-06-01-2024")],
        );
        let Step::Failed(problem) = step else {
            panic!()
        };
        assert!(problem.is(ProblemCode::ReleaseUnsupported));
        assert!(
            problem.detail.contains("Xanadu") && problem.detail.contains("Tokyo"),
            "{}",
            problem.detail
        );
    }

    #[test]
    fn without_batch_api_it_falls_back_within_four_round_trips() {
        let mut p = Preflight::new(input(AuthMethod::Oauth), 0);
        let role = json(200, serde_json::json!({"result":[{"sys_id":"x"}]}));
        let release = json(
            200,
            serde_json::json!({"result":[{"name":"glide.buildname","value":"Geneva"}]}),
        );
        let no_batch = json(
            400,
            serde_json::json!({"error":{"message":"Requested URI does not represent any resource"},"status":"failure"}),
        );
        let (sent, step) = drive(&mut p, vec![token(3599), no_batch, role, release]);
        assert_eq!(sent.len(), 4);
        let Step::Done(r) = step else {
            panic!("{step:?}")
        };
        assert_eq!(r.release.name(), "Geneva");
        assert_eq!(r.round_trips, MAX_ROUND_TRIPS);
        assert_eq!(r.warnings[0].code, WarningCode::TableAccessUnchecked);
    }

    #[test]
    fn client_credentials_connect_keeps_no_refresh_token_and_learns_its_user() {
        let mut p = Preflight::new(input(AuthMethod::ClientCredentials), 500);
        let no_refresh = json(
            200,
            serde_json::json!({"access_token":"at","expires_in":3599,"token_type":"Bearer","scope":"useraccount"}),
        );
        let (sent, step) = drive(
            &mut p,
            vec![no_refresh, batch_answer(1, 200, "glide-yokohama-x")],
        );
        let body = String::from_utf8(sent[0].body.clone()).unwrap();
        assert!(body.starts_with("grant_type=client_credentials&"), "{body}");
        assert!(!body.contains("username"), "{body}");
        let Step::Done(r) = step else {
            panic!("{step:?}")
        };
        assert_eq!(r.user_name.as_deref(), Some("app.user"));
        assert!(matches!(
            r.credential,
            Credential::ClientCredentials {
                access_expires_at: 4_099,
                ..
            }
        ));
    }

    #[test]
    fn hardening_warnings_fit_the_method() {
        let both = [PASSWORD_GRANT_OFF, BASIC_AUTH_RESTRICTION];
        let codes = |method, web_service_only| {
            let mut p = Preflight::new(input(method), 0);
            let mut answers = vec![hardened_answer(
                1,
                200,
                "glide-zurich-x",
                &both,
                web_service_only,
            )];
            if method != AuthMethod::Basic {
                answers.insert(0, token(3599));
            }
            let (_, step) = drive(&mut p, answers);
            let Step::Done(r) = step else {
                panic!("{step:?}")
            };
            r.warnings
                .into_iter()
                .map(|w| w.code.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(codes(AuthMethod::Oauth, false), ["password_grant_disabled"]);
        assert_eq!(codes(AuthMethod::Basic, false), ["basic_auth_restricted"]);
        assert!(
            codes(AuthMethod::Basic, true).is_empty(),
            "a web-service-only account is not restricted"
        );
        assert!(codes(AuthMethod::ClientCredentials, false).is_empty());
    }

    #[test]
    fn a_refusal_is_explained_for_the_method_used() {
        let denied = || {
            json(
                401,
                serde_json::json!({"error_description":"access_denied","error":"server_error"}),
            )
        };
        let problem = |method| {
            let mut p = Preflight::new(input(method), 0);
            match drive(&mut p, vec![denied()]).1 {
                Step::Failed(pr) => pr,
                other => panic!("{other:?}"),
            }
        };
        let oauth = problem(AuthMethod::Oauth);
        assert!(oauth.is(ProblemCode::CredentialsRejected));
        assert!(
            oauth.detail.contains("connect with client credentials"),
            "{}",
            oauth.detail
        );
        let basic = problem(AuthMethod::Basic);
        assert!(!basic.detail.contains("client secret"), "{}", basic.detail);
        assert!(
            basic.detail.contains("Web service access only"),
            "{}",
            basic.detail
        );
        let cc = problem(AuthMethod::ClientCredentials);
        assert!(cc.detail.contains("application user"), "{}", cc.detail);
        assert!(!cc.detail.contains("password"), "{}", cc.detail);
    }

    #[test]
    fn unreachable_is_its_own_problem() {
        let mut p = Preflight::new(input(AuthMethod::Basic), 0);
        let _ = p.start();
        assert!(
            matches!(p.handle_unreachable("connection refused"), Step::Failed(pr) if pr.is(ProblemCode::InstanceUnreachable))
        );
    }
}
