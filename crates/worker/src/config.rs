//! The worker's configuration (wrangler.toml vars and secrets): every
//! variable is read here, into core types, and nowhere else.

use std::time::Duration;

use snc_core::api::access::FailurePolicy;
use snc_core::api::access_jwt::AccessConfig;
use snc_core::pull::cursor::MAX_PAGE;
use snc_core::pull::schedule::PullInterval;
use snc_core::seal::KeyRing;
use snc_core::servicenow::instance_url::HostPolicy;
use snc_core::servicenow::release::ReleaseRange;
use snc_core::watch::detect::RuleConfig;
use worker::Env;

pub struct Config {
    pub admin_token: Option<String>,
    /// `ENCRYPTION_KEY` and `ENCRYPTION_KEYS_PREVIOUS`; `None` when either
    /// does not read (every secret then waits rather than being misread).
    pub keys: Option<KeyRing>,
    pub policy: HostPolicy,
    /// `None` when SUPPORTED_RELEASES is set but unreadable.
    pub releases: Option<ReleaseRange>,
    pub backfill_days: i64,
    pub allowed_origins: Vec<String>,
    /// How long one call to an instance may take (`CALL_TIMEOUT_MS`, at
    /// most 100 s).
    pub call_deadline: std::time::Duration,
    /// The most a pull's page answer may hold (`ANSWER_CAP_BYTES`, 256 KB to
    /// the default 32 MB): a larger page is asked again smaller.
    pub answer_cap: usize,
    /// Cloudflare Access sign-in, with `ACCESS_TEAM_DOMAIN` and `ACCESS_AUD`.
    pub access: Option<AccessSettings>,
    /// Failed credentials allowed per client address in 5 minutes
    /// (`FAILED_CREDENTIALS_LIMIT`, default 10).
    pub failures: FailurePolicy,
    /// Connections one non-admin key may have made (`CONNECTIONS_PER_KEY`,
    /// 1 to 10,000, default 50).
    pub connections_per_key: u32,
    /// `INSTANCE_HOSTS` as written, for the page to validate as the worker
    /// does.
    pub instance_hosts: String,
    /// `PULL_INTERVAL_SECS`, 30 to 3,600, default 60: seconds between the
    /// pulls of a caught-up connection.
    pub pull_interval: PullInterval,
    /// `PULLS_PAUSED=true`: no connection pulls or forwards (an operator's
    /// stop).
    pub pulls_paused: bool,
    /// `PULL_BUDGET_MS` (default 20,000, at least 1,000), `PULL_MAX_CALLS`
    /// (default 40) and `PULL_PAGE_SIZE` (default and most: core's page):
    /// one pull slice's limits.
    pub pull_budget_ms: u64,
    pub pull_max_calls: u32,
    pub pull_page_size: u32,
    /// `EVENT_RETENTION_DAYS`, default 90.
    pub retention_days: i64,
    /// `SLICE_RETRY_SECS`, default 60: the first wait after a slice failed
    /// inside the worker (it doubles with each failure in a row, to an hour).
    pub slice_retry_secs: i64,
    /// `PURGE_OBJECTS_PER_STEP`, default 10,000: archive objects a deleted
    /// connection's purge removes per step (its alarm goes on with the rest).
    pub purge_objects_per_step: u32,
    /// `TEST_PURGE_FAULTS`, default 0, for tests only: how many purge steps
    /// fail after their first deletes, as R2 failing in the middle of a
    /// purge would (the local bucket cannot be made to fail). Counted per
    /// isolate; a var only (never a secret, where it would sit unseen).
    pub test_purge_faults: u32,
    /// `EVENTS_MEMBERS_PER_READ`, default 64: archive members (256 events
    /// each) one events read may open; a read that runs out answers a
    /// cursor to go on with, so a sparse filter over months cannot tie up
    /// the connection's object.
    pub events_members_per_read: u32,
    /// `DETECTION_THRESHOLDS` as written: read into the rules (`rules()`)
    /// only where a detector is built, so a bad value is logged there, not
    /// at every request.
    detection_thresholds: Option<String>,
    /// `SINK_TIMEOUT_MS`, default 10 s, at least 100 ms: one call to a sink.
    pub sink_deadline: Duration,
    /// `SINK_BACKOFF_MAX_SECS`: the longest wait between a sink's tries (an
    /// hour).
    pub sink_backoff_max_secs: i64,
}

/// Access settings: the checks' values and where the keys are read.
#[derive(Clone)]
pub struct AccessSettings {
    pub config: AccessConfig,
    pub certs_url: String,
}

/// A number variable: `None` when absent or not a number.
fn number<T: std::str::FromStr>(env: &Env, name: &str) -> Option<T> {
    text(env, name).and_then(|v| v.trim().parse().ok())
}

fn text(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.to_string())
        .or_else(|_| env.secret(name).map(|s| s.to_string()))
        .ok()
        .filter(|s| !s.trim().is_empty())
}

impl Config {
    pub fn from_env(env: &Env) -> Config {
        let loopback = text(env, "ALLOW_LOOPBACK_INSTANCES");
        let access = AccessConfig::from_config(
            text(env, "ACCESS_TEAM_DOMAIN").as_deref(),
            text(env, "ACCESS_AUD").as_deref(),
        )
        .map(|config| AccessSettings {
            // Tests serve their own certs; a deployment always reads the
            // team's, so the override needs the loopback (test) setting.
            certs_url: text(env, "ACCESS_CERTS_URL")
                .filter(|_| {
                    loopback
                        .as_deref()
                        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
                })
                .unwrap_or_else(|| config.certs_url()),
            config,
        });
        let mut failures = FailurePolicy::default();
        if let Some(limit) = text(env, "FAILED_CREDENTIALS_LIMIT")
            .and_then(|v| v.trim().parse::<u32>().ok())
            .filter(|l| *l > 0)
        {
            failures.limit = limit;
        }
        Config {
            instance_hosts: text(env, "INSTANCE_HOSTS").unwrap_or_default(),
            pull_interval: PullInterval::from_config(text(env, "PULL_INTERVAL_SECS").as_deref()),
            pulls_paused: text(env, "PULLS_PAUSED").is_some_and(|v| v.trim() == "true"),
            // Read as signed and clamped: a negative value is the bound, as
            // it always was.
            pull_budget_ms: number(env, "PULL_BUDGET_MS")
                .map_or(20_000, |ms: i64| ms.max(1_000).unsigned_abs()),
            pull_max_calls: number(env, "PULL_MAX_CALLS")
                .map_or(40, |n: i64| u32::try_from(n.max(1)).unwrap_or(u32::MAX)),
            pull_page_size: number(env, "PULL_PAGE_SIZE").map_or(MAX_PAGE, |n: i64| {
                n.clamp(1, i64::from(MAX_PAGE)).unsigned_abs() as u32
            }),
            retention_days: number(env, "EVENT_RETENTION_DAYS")
                .filter(|d: &i64| *d > 0)
                .unwrap_or(90),
            slice_retry_secs: number(env, "SLICE_RETRY_SECS")
                .filter(|s: &i64| *s >= 1)
                .unwrap_or(60),
            purge_objects_per_step: number(env, "PURGE_OBJECTS_PER_STEP")
                .filter(|n: &u32| *n >= 1)
                .unwrap_or(10_000),
            test_purge_faults: env
                .var("TEST_PURGE_FAULTS")
                .ok()
                .and_then(|v| v.to_string().trim().parse().ok())
                .unwrap_or(0),
            events_members_per_read: number(env, "EVENTS_MEMBERS_PER_READ")
                .filter(|n: &u32| *n >= 1)
                .unwrap_or(64),
            detection_thresholds: text(env, "DETECTION_THRESHOLDS"),
            sink_deadline: number(env, "SINK_TIMEOUT_MS")
                .filter(|ms: &u64| *ms >= 100)
                .map_or(Duration::from_secs(10), Duration::from_millis),
            sink_backoff_max_secs: number(env, "SINK_BACKOFF_MAX_SECS")
                .filter(|s: &i64| *s >= 1)
                .unwrap_or(snc_core::forward::MAX_RETRY_SECS),
            access,
            failures,
            admin_token: text(env, "ADMIN_TOKEN"),
            keys: text(env, "ENCRYPTION_KEY").and_then(|k| {
                KeyRing::from_config(&k, text(env, "ENCRYPTION_KEYS_PREVIOUS").as_deref()).ok()
            }),
            policy: HostPolicy::from_config(
                text(env, "INSTANCE_HOSTS").as_deref(),
                loopback.as_deref(),
            ),
            releases: ReleaseRange::parse(text(env, "SUPPORTED_RELEASES").as_deref()),
            connections_per_key: text(env, "CONNECTIONS_PER_KEY")
                .and_then(|v| v.trim().parse().ok())
                .filter(|n: &u32| (1..=10_000).contains(n))
                .unwrap_or(snc_core::api::access::CONNECTIONS_PER_KEY),
            backfill_days: text(env, "BACKFILL_DAYS")
                .and_then(|d| d.trim().parse().ok())
                .filter(|d: &i64| (1..=90).contains(d))
                .unwrap_or(7),
            allowed_origins: text(env, "ALLOWED_ORIGINS")
                .map(|o| {
                    o.split(',')
                        .map(|s| s.trim().trim_end_matches('/').to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            answer_cap: text(env, "ANSWER_CAP_BYTES")
                .and_then(|v| v.trim().parse::<usize>().ok())
                .map_or(snc_core::http::SERVICENOW_ANSWER_CAP, |b| {
                    b.clamp(256 * 1024, snc_core::http::SERVICENOW_ANSWER_CAP)
                }),
            // At most 100 s: a delete waits 120 s for a running slice to
            // reach its next step, so one call can never outlast that wait.
            call_deadline: text(env, "CALL_TIMEOUT_MS")
                .and_then(|v| v.trim().parse().ok())
                .filter(|ms: &u64| *ms >= 100)
                .map_or(crate::transport::CALL_DEADLINE, |ms: u64| {
                    std::time::Duration::from_millis(ms.min(100_000))
                }),
        }
    }
}

/// `DETECTION_THRESHOLDS`: JSON overriding the rules' defaults, e.g.
/// `{"failed_login_burst":{"count":5,"window_secs":300}}`. What does not
/// parse or validate is logged and the defaults apply, so a typo never
/// switches detections off.
impl Config {
    /// The detection rules' thresholds: `DETECTION_THRESHOLDS` over the
    /// defaults.
    pub fn rules(&self) -> RuleConfig {
        rule_config(self.detection_thresholds.as_deref())
    }
}

fn rule_config(raw: Option<&str>) -> RuleConfig {
    let defaults = RuleConfig::default();
    let Some(raw) = raw.filter(|v| !v.trim().is_empty()) else {
        return defaults;
    };
    let merged = serde_json::to_value(defaults).ok().and_then(|mut base| {
        let patch: serde_json::Value = serde_json::from_str(raw).ok()?;
        for (k, v) in patch.as_object()? {
            base.as_object_mut()?.insert(k.clone(), v.clone());
        }
        serde_json::from_value::<RuleConfig>(base).ok()
    });
    match merged.map(|c| c.validate().map(|_| c)) {
        Some(Ok(c)) => c,
        Some(Err(why)) => {
            worker::console_log!("DETECTION_THRESHOLDS ignored: {why}");
            defaults
        }
        None => {
            worker::console_log!("DETECTION_THRESHOLDS ignored: not a JSON object of thresholds");
            defaults
        }
    }
}
