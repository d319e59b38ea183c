//! `/api/v1/connections`: connect, list, get, rename/enable/disable,
//! reconnect and delete.

use serde::Deserialize;
use serde_json::json;
use snc_core::connect::input::{self, ConnectCredentials};
use snc_core::connect::preflight::{Credential, Preflight, PreflightInput, PreflightReport, Step};
use snc_core::problem::{Problem, ProblemCode};
use snc_core::seal::{KeyRing, SealingKey};
use snc_core::servicenow::instance_url::InstanceUrl;
use snc_core::servicenow::release::ReleaseRange;
use snc_core::watch::posture::PostureReport;
use worker::{console_log, Env, Request, Response, Result};

use super::valid_id;
use super::validate::read_connect_request;
use crate::config::Config;
use crate::connection_object;
use crate::d1::connections::{NewConnection, Renewal, SealedSecret, Store};
use crate::respond::{self, Answer, AppError};
use crate::{now, random_bytes, transport};
use snc_core::api::connection::Connection;

fn store(env: &Env) -> Result<Store> {
    Ok(Store::new(env.d1("DB")?))
}

fn not_found(id: &str) -> Answer {
    respond::fail(
        ProblemCode::NotFound,
        &format!("There is no connection {id:?}."),
    )
}

/// Drives core's preflight over the network. The password travels in the
/// token request (or, for basic, every call) and nowhere else.
/// The admin waits for the connect: a silent instance is reported sooner
/// than a pull would give up on it.
const PREFLIGHT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(25);

async fn run_preflight(
    input: PreflightInput,
    config: &Config,
) -> std::result::Result<PreflightReport, Problem> {
    let deadline = config.call_deadline.min(PREFLIGHT_DEADLINE);
    let mut preflight = Preflight::new(input, now());
    let mut step = preflight.start();
    loop {
        let req = match step {
            Step::Send(req) => req,
            Step::Retry { after_ms, request } => {
                console_log!("preflight: a passing refusal, asking again in {after_ms} ms");
                worker::Delay::from(std::time::Duration::from_millis(after_ms)).await;
                request
            }
            Step::Done(report) => {
                console_log!("preflight done in {} round trips", report.round_trips);
                return Ok(*report);
            }
            Step::Failed(problem) => {
                console_log!(
                    "preflight failed after {} round trips: {}",
                    preflight.round_trips(),
                    problem.code
                );
                return Err(problem);
            }
        };
        step = match transport::send_within(&req, deadline).await {
            Ok(resp) => preflight.handle_response(&resp),
            Err(why) => preflight.handle_unreachable(&why.to_string()),
        };
    }
}

fn seal_all(
    key: &SealingKey,
    connection_id: &str,
    credential: &Credential,
) -> Result<Vec<SealedSecret>> {
    use crate::sealing::seal;
    let id = connection_id;
    match credential {
        Credential::OAuth {
            client,
            refresh_token,
            access_token,
            access_expires_at,
        } => Ok(vec![
            seal(key, id, refresh_token, None)?,
            seal(key, id, access_token, Some(*access_expires_at))?,
            seal(key, id, &client.client_secret, None)?,
        ]),
        Credential::ClientCredentials {
            client,
            access_token,
            access_expires_at,
        } => Ok(vec![
            seal(key, id, access_token, Some(*access_expires_at))?,
            seal(key, id, &client.client_secret, None)?,
        ]),
        Credential::Basic { password } => Ok(vec![seal(key, id, password, None)?]),
    }
}

/// The account a connection acts as: the typed user ID, or for client
/// credentials the application's user as the instance named it (its client
/// ID when the instance would not say).
fn acting_user(credentials: &ConnectCredentials, report: &PreflightReport) -> String {
    credentials
        .username()
        .map(str::to_string)
        .or_else(|| report.user_name.clone())
        .or_else(|| credentials.client().map(|c| c.client_id.clone()))
        .unwrap_or_default()
}

fn require_key(config: &Config) -> std::result::Result<&SealingKey, Problem> {
    config.keys.as_ref().map(KeyRing::current).ok_or_else(|| {
        Problem::with_context(ProblemCode::Internal, "ENCRYPTION_KEY (or a key in ENCRYPTION_KEYS_PREVIOUS) is missing or is not 32 bytes of base64 (wrangler secret put ENCRYPTION_KEY).")
    })
}

fn require_releases(config: &Config) -> std::result::Result<ReleaseRange, Problem> {
    config.releases.ok_or_else(|| {
        Problem::with_context(
            ProblemCode::Internal,
            "SUPPORTED_RELEASES is not a range such as \"Eureka..Tokyo\".",
        )
    })
}

/// What a connect and a reconnect need before they call the instance,
/// checked first so a deployment missing either refuses before any call.
struct Ready<'a> {
    key: &'a SealingKey,
    releases: ReleaseRange,
}

/// The instance checked and the credentials exchanged (the preflight),
/// sealed for the connection, with the posture read on the way.
struct Checked {
    report: PreflightReport,
    secrets: Vec<SealedSecret>,
    username: String,
    posture: Option<PostureReport>,
}

impl<'a> Ready<'a> {
    fn check(config: &'a Config) -> std::result::Result<Self, Problem> {
        Ok(Ready {
            key: require_key(config)?,
            releases: require_releases(config)?,
        })
    }

    async fn connect(
        &self,
        config: &Config,
        id: &str,
        instance: InstanceUrl,
        credentials: &ConnectCredentials,
    ) -> std::result::Result<Checked, AppError> {
        let report = run_preflight(
            PreflightInput {
                instance,
                credentials: credentials.clone(),
                releases: self.releases,
            },
            config,
        )
        .await?;
        let secrets = seal_all(self.key, id, &report.credential)?;
        let username = acting_user(credentials, &report);
        // The hardening settings came with the connect's Batch API call.
        let posture = report
            .posture
            .as_ref()
            .map(|r| snc_core::watch::posture::evaluate(r, credentials.method(), now()));
        Ok(Checked {
            report,
            secrets,
            username,
            posture,
        })
    }
}

impl Checked {
    /// Once the row is written: the posture kept in the connection's
    /// object, and its pulls started (the cron's watchdog would start them
    /// within minutes anyway).
    async fn settle(&self, env: &Env, id: &str, what: &str) {
        if let (Some(posture), Some(readings)) = (&self.posture, &self.report.posture) {
            if let Err(e) =
                crate::connection_object::keep_posture(env, id, posture, &readings.property_ids)
                    .await
            {
                console_log!("{what}: could not keep the posture of {id}: {e}");
            }
        }
        if let Err(e) = crate::connection_object::wake(env, id).await {
            console_log!("{what}: could not start the pulls of {id}: {e}");
        }
    }
}

/// A rename to a name another connection has.
fn name_taken() -> Answer {
    Err(
        Problem::with_context(ProblemCode::Conflict, "Another connection has this name.")
            .advise("Pick another name.")
            .into(),
    )
}

fn is_unique_violation(e: &worker::Error) -> bool {
    e.to_string().contains("UNIQUE")
}

pub async fn create(mut req: Request, env: &Env, config: &Config, owner: Option<&str>) -> Answer {
    let body = read_connect_request(&mut req).await?;
    let input = input::validate(&body, &config.policy).map_err(Problem::validation)?;
    let ready = Ready::check(config)?;
    let store = store(env)?;
    // A key's quota, before the instance is called: a key at its quota
    // cannot make the worker relay calls to instances either.
    let quota = config.connections_per_key;
    if let Some(owner) = owner {
        if store.owned(owner).await? >= quota {
            return quota_exceeded(quota);
        }
    }
    // Client credentials name no user until the instance says which one the
    // application acts as: the unique key catches that case at insert.
    if store
        .conflicting(
            Some(&input.name),
            input.instance_url.as_str(),
            input.credentials.username().unwrap_or(""),
            None,
        )
        .await?
        .is_some()
    {
        return respond::fail(
            ProblemCode::Conflict,
            "A connection with this name, or this instance and user, exists.",
        );
    }
    let id = crate::hex(&random_bytes::<16>()?);
    let checked = ready
        .connect(config, &id, input.instance_url.clone(), &input.credentials)
        .await?;
    let inserted = store
        .insert(
            &NewConnection {
                id: &id,
                name: &input.name,
                instance_url: input.instance_url.as_str(),
                username: &checked.username,
                method: input.method(),
                client_id: input.credentials.client().map(|c| c.client_id.as_str()),
                warnings: &checked.report.warnings,
                release: checked.report.release.name(),
                build: &checked.report.build,
                now: now(),
                backfill_days: config.backfill_days,
                posture_score: checked.posture.as_ref().map(|p| p.score),
                owner,
            },
            &checked.secrets,
        )
        .await;
    match inserted {
        Ok(()) => {}
        Err(e) if is_unique_violation(&e) => {
            return respond::fail(
                ProblemCode::Conflict,
                "A connection with this name, or this instance and user, was created meanwhile.",
            )
        }
        Err(e) => return Err(e.into()),
    }
    // Concurrent connects may all have passed the first count: one not
    // among the owner's first `quota` is taken back.
    if let Some(owner) = owner {
        if !store.within_quota(owner, &id, quota).await? {
            store.take_back(&id).await?;
            return quota_exceeded(quota);
        }
    }
    checked.settle(env, &id, "connect").await;
    match store.get(&id).await? {
        Some(row) => respond::json(201, &row.to_api()),
        None => Err(Problem::new(ProblemCode::Internal).into()),
    }
}

fn quota_exceeded(quota: u32) -> Answer {
    respond::fail(
        ProblemCode::QuotaExceeded,
        &format!("This key has made {quota} connections, its quota (CONNECTIONS_PER_KEY), counting those of the connect tickets it minted."),
    )
}

/// Connections whose objects a list asks for their pull times, in
/// parallel; the rest show their rows' (at most a lease, an hour, old).
const PULL_TIMES_PER_LIST: usize = 200;

/// The connection as the API shows it: its row, with the pull times its
/// object keeps.
async fn shown(env: &Env, connection: Connection) -> Connection {
    if !connection.pull_times_live() {
        return connection;
    }
    match connection_object::pull_times(env, &connection.id).await {
        Some(times) => connection.with_pull_times(times),
        None => connection,
    }
}

pub async fn list(env: &Env) -> Answer {
    let rows = store(env)?.list().await?;
    // The first PULL_TIMES_PER_LIST connected ones ask their objects; the
    // others (and any beyond) show their rows.
    let mut live = 0;
    let mut shows = Vec::with_capacity(rows.len());
    for row in &rows {
        let c = row.to_api();
        if c.pull_times_live() && live < PULL_TIMES_PER_LIST {
            live += 1;
            shows.push(futures_util::future::Either::Left(shown(env, c)));
        } else {
            shows.push(futures_util::future::Either::Right(std::future::ready(c)));
        }
    }
    let connections = futures_util::future::join_all(shows).await;
    respond::json(200, &json!({ "connections": connections }))
}

pub async fn get(env: &Env, id: &str) -> Answer {
    if !valid_id(id) {
        return not_found(id);
    }
    match store(env)?.get(id).await? {
        Some(row) => respond::json(200, &shown(env, row.to_api()).await),
        None => not_found(id),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    name: Option<String>,
    enabled: Option<bool>,
    /// A number (30 to 3,600), or null for the deployment's interval
    /// (present and null is `Some(Null)`; absent is `None`).
    #[serde(default, deserialize_with = "present")]
    pull_interval_secs: Option<serde_json::Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

fn interval_problem(message: &str) -> Problem {
    Problem::validation(vec![snc_core::problem::FieldError {
        field: "pull_interval_secs".into(),
        code: "out_of_range".into(),
        message: message.into(),
    }])
}

pub async fn patch(mut req: Request, env: &Env, id: &str) -> Answer {
    if !valid_id(id) {
        return not_found(id);
    }
    let text = req.text().await.unwrap_or_default();
    let Ok(body) = serde_json::from_str::<PatchBody>(&text) else {
        return Err(Problem::validation(vec![snc_core::problem::FieldError {
            field: "body".into(),
            code: "invalid_json".into(),
            message: "Send a JSON object with \"name\" (text), \"enabled\" (true or false) and/or \"pull_interval_secs\" (30 to 3600, or null), nothing else.".into(),
        }]).into());
    };
    // Checked before anything changes: a bad value changes nothing.
    let interval = match &body.pull_interval_secs {
        None => None,
        Some(serde_json::Value::Null) => Some(None),
        Some(v) => match v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(snc_core::pull::schedule::PullInterval::new)
        {
            Some(Ok(i)) => Some(Some(i)),
            Some(Err(e)) => return Err(interval_problem(&e.to_string()).into()),
            None => {
                return Err(interval_problem(
                    "pull_interval_secs must be a whole number of seconds from 30 to 3600, or null for the deployment's PULL_INTERVAL_SECS",
                )
                .into())
            }
        },
    };
    let store = store(env)?;
    let Some(row) = store.get(id).await? else {
        return not_found(id);
    };
    if let Some(name) = &body.name {
        let name = input::check_name(name).map_err(|e| Problem::validation(vec![e]))?;
        if store
            .conflicting(Some(&name), "", "", Some(id))
            .await?
            .is_some()
        {
            return name_taken();
        }
        match store.rename(id, &name).await {
            Ok(()) => {}
            Err(e) if is_unique_violation(&e) => return name_taken(),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(enabled) = body.enabled {
        if enabled != row.enabled {
            store.set_enabled(id, enabled).await?;
            if enabled {
                // Resume from the cursor without waiting for the cron.
                let _ = crate::connection_object::wake(env, id).await;
            }
        }
    }
    // Last: a refused name (422, 409) leaves the interval as it was.
    if let Some(interval) = interval {
        store.set_pull_interval(id, interval).await?;
        // The new interval counts from a pull now.
        let _ = crate::connection_object::wake(env, id).await;
    }
    match store.get(id).await? {
        Some(row) => respond::json(200, &row.to_api()),
        None => not_found(id),
    }
}

/// `DELETE`: the connection leaves every route at once (its row goes, a
/// tombstone stays); 204 once nothing of it remains, 202 while its object,
/// archive and legacy rows are still being purged (the object's alarm and
/// the cron carry on; asking again is safe and answers 204 once done).
pub async fn delete(env: &Env, id: &str) -> Answer {
    if !valid_id(id) {
        return not_found(id);
    }
    let store = store(env)?;
    if store.get(id).await?.is_some() {
        store.bury(id, crate::now()).await?;
    } else {
        match store.tombstone(id).await? {
            None => return not_found(id),
            Some(true) => return Ok(Response::empty()?.with_status(204)),
            Some(false) => {}
        }
    }
    match crate::connection_object::delete(env, id).await {
        Ok(true) => Ok(Response::empty()?.with_status(204)),
        Ok(false) => deleting(id),
        Err(e) => {
            console_log!("delete {id}: the purge goes on later: {e}");
            deleting(id)
        }
    }
}

fn deleting(id: &str) -> Answer {
    respond::json(
        202,
        &json!({
            "id": id,
            "purge": "running",
            "message": "The connection is deleted; its stored events are still being purged. DELETE again (or wait): 204 once nothing of it remains.",
        }),
    )
}

pub async fn reconnect(mut req: Request, env: &Env, config: &Config, id: &str) -> Answer {
    if !valid_id(id) {
        return not_found(id);
    }
    let store = store(env)?;
    let Some(row) = store.get(id).await? else {
        return not_found(id);
    };
    let mut body = read_connect_request(&mut req).await?;
    // A reconnect usually only renews the password (or the secret): what is
    // not sent stays as connected.
    body.username = body.username.or_else(|| Some(row.username.clone()));
    body.client_id = body.client_id.or_else(|| row.client_id.clone());
    let method = row.method;
    let credentials = input::validate_credentials(&body, method).map_err(Problem::validation)?;
    let ready = Ready::check(config)?;
    // The stored URL passed the policy when it was connected; check it again
    // in case INSTANCE_HOSTS was narrowed since.
    let instance = input::check_instance_url(&row.instance_url, &config.policy)
        .map_err(|e| Problem::validation(vec![e]))?;
    if store
        .conflicting(
            None,
            instance.as_str(),
            credentials.username().unwrap_or(""),
            Some(id),
        )
        .await?
        .is_some()
    {
        return Err(Problem::with_context(
            ProblemCode::Conflict,
            "Another connection uses this instance and user.",
        )
        .advise("Reconnect with another user, or reconnect the connection that has this one.")
        .into());
    }
    let checked = ready.connect(config, id, instance, &credentials).await?;
    store
        .reconnect(
            id,
            &Renewal {
                username: &checked.username,
                client_id: credentials.client().map(|c| c.client_id.as_str()),
                warnings: &checked.report.warnings,
                release: checked.report.release.name(),
                build: &checked.report.build,
            },
            &checked.secrets,
        )
        .await?;
    checked.settle(env, id, "reconnect").await;
    match store.get(id).await? {
        Some(row) => respond::json(200, &row.to_api()),
        None => not_found(id),
    }
}
