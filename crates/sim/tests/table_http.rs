//! The Table API over real HTTP, checked against ServiceNow's documented
//! behaviour and against the simulator's own ground truth.

use std::collections::HashSet;

use serde_json::{json, Value};
use snc_sim::{Conditions, SimConfig, SimHandle};

async fn start(config: SimConfig, conditions: Conditions) -> SimHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    snc_sim::start_with(config, conditions, listener)
        .await
        .unwrap()
}

fn small() -> SimConfig {
    SimConfig {
        days: 2,
        events_per_day: 500,
        ..Default::default()
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
}

impl Client {
    fn new(sim: &SimHandle) -> Self {
        Client {
            http: reqwest::Client::new(),
            base: sim.instance_url(),
            user: sim.state.config.username.clone(),
            password: sim.state.config.password.clone(),
        }
    }

    async fn get(&self, path_and_query: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{}", self.base, path_and_query))
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .unwrap()
    }

    async fn control(&self, path: &str, body: Value) -> Value {
        self.http
            .post(format!("{}/__sim/{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn truth(&self, table: &str) -> Vec<String> {
        let v: Value = self
            .http
            .get(format!("{}/__sim/truth?table={table}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["sys_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    }
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Follows `Link: rel="next"` from the first page; returns every sys_id seen.
async fn page_through(c: &Client, first: &str) -> (Vec<String>, usize, Vec<usize>) {
    let mut url = format!("{}{}", c.base, first);
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut sizes = Vec::new();
    loop {
        let r = c
            .http
            .get(&url)
            .basic_auth(&c.user, Some(&c.password))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{url}");
        let link = r
            .headers()
            .get("link")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body: Value = r.json().await.unwrap();
        let result = body["result"].as_array().unwrap();
        sizes.push(result.len());
        ids.extend(
            result
                .iter()
                .map(|rec| rec["sys_id"].as_str().unwrap().to_string()),
        );
        pages += 1;
        match link.split(',').find(|l| l.ends_with("rel=\"next\"")) {
            Some(next) => url = next.split(['<', '>']).nth(1).unwrap().to_string(),
            None => break,
        }
    }
    (ids, pages, sizes)
}

#[tokio::test]
async fn paging_by_link_header_returns_exactly_the_ground_truth_with_bursts() {
    let sim = start(small(), Conditions::default()).await;
    let c = Client::new(&sim);
    let truth = c.truth("sysevent").await;
    // 500/day x 30 % x 2 days, and each day has a burst of a tenth of them.
    assert_eq!(truth.len(), 300);

    let q = enc("ORDERBYsys_created_on^ORDERBYsys_id");
    let first = format!("/api/now/v2/table/sysevent?sysparm_query={q}&sysparm_limit=40&sysparm_fields=sys_id,sys_created_on");
    let r = c.get(&first).await;
    assert_eq!(r.headers()["x-total-count"], "300");
    let link = r.headers()["link"].to_str().unwrap().to_string();
    assert!(link.starts_with('<'), "{link}");
    assert!(link.contains(";rel=\"first\""));
    assert!(link.contains(";rel=\"next\""));
    assert!(link.contains("sysparm_offset=280>;rel=\"last\""), "{link}");
    assert!(!link.contains("rel=\"prev\""));

    let (ids, pages, _) = page_through(&c, &first).await;
    assert_eq!(pages, 8);
    assert_eq!(
        ids, truth,
        "same records, same (sys_created_on, sys_id) order"
    );

    // The burst: many records in one second.
    let body: Value = c
        .get("/api/now/v2/table/sysevent?sysparm_fields=sys_created_on")
        .await
        .json()
        .await
        .unwrap();
    let mut per_second = std::collections::HashMap::new();
    for r in body["result"].as_array().unwrap() {
        *per_second
            .entry(r["sys_created_on"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert!(
        per_second.values().any(|n| *n >= 15),
        "a burst second exists"
    );
    sim.stop().await;
}

#[tokio::test]
async fn ordering_by_time_alone_shuffles_ties_between_pages() {
    let sim = start(small(), Conditions::default()).await;
    let c = Client::new(&sim);
    c.control(
        "insert",
        json!({"table":"sysevent","count":100,"created_on":"2030-01-01 00:00:00"}),
    )
    .await;
    let q = enc("sys_created_on>=2030-01-01 00:00:00^ORDERBYsys_created_on");
    let (ids, _, _) = page_through(
        &c,
        &format!("/api/now/table/sysevent?sysparm_query={q}&sysparm_limit=10"),
    )
    .await;
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(ids.len(), 100);
    assert!(
        unique.len() < 100,
        "offset paging over a tie without a sys_id key must not be reliable"
    );
    sim.stop().await;
}

#[tokio::test]
async fn v1_answers_404_when_nothing_matches_and_v2_answers_empty() {
    let sim = start(small(), Conditions::default()).await;
    let c = Client::new(&sim);
    let q = enc("name=no.such.event");
    let r = c
        .get(&format!("/api/now/table/sysevent?sysparm_query={q}"))
        .await;
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["message"], "No Record found");
    assert_eq!(body["status"], "failure");
    let r = c
        .get(&format!("/api/now/v2/table/sysevent?sysparm_query={q}"))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-total-count"], "0");
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"result": []}));
    sim.stop().await;
}

#[tokio::test]
async fn unknown_fields_are_ignored_and_limit_is_capped() {
    let sim = start(small(), Conditions::default()).await;
    let c = Client::new(&sim);
    let q = enc("nmae=login");
    let r = c.get(&format!("/api/now/table/sysevent?sysparm_query={q}&sysparm_limit=20000&sysparm_fields=sys_id,bogus,name")).await;
    assert_eq!(
        r.headers()["x-total-count"],
        "300",
        "a misspelled field returns the whole table"
    );
    let body: Value = r.json().await.unwrap();
    let first = body["result"][0].as_object().unwrap();
    let mut keys: Vec<&String> = first.keys().collect();
    keys.sort();
    assert_eq!(keys, ["name", "sys_id"]);
    let r = c.get("/api/now/table/no_such_table").await;
    assert_eq!(r.status(), 400);
    sim.stop().await;
}

#[tokio::test]
async fn dot_walk_admin_role_check_and_release_properties() {
    let config = SimConfig {
        release: "washingtondc".into(),
        ..small()
    };
    let sim = start(config, Conditions::default()).await;
    let c = Client::new(&sim);
    let q = enc("user.user_name=svc.connector^role.name=admin");
    let role_check = format!("/api/now/table/sys_user_has_role?sysparm_query={q}&sysparm_limit=1&sysparm_fields=sys_id,role.name");
    let r = c.get(&role_check).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["result"][0]["role.name"], "admin");

    // The session's own user, as the connector asks: the service account's
    // admin grant only, whoever else holds admin.
    let q = enc("user=javascript:gs.getUserID()^role.name=admin");
    let own = format!("/api/now/table/sys_user_has_role?sysparm_query={q}&sysparm_fields=user.user_name,role.name");
    let body: Value = c.get(&own).await.json().await.unwrap();
    let rows = body["result"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["user.user_name"], "svc.connector");
    let not_admin = start(
        small(),
        Conditions {
            not_admin: true,
            ..Conditions::default()
        },
    )
    .await;
    let r = Client::new(&not_admin).get(&own).await;
    assert_eq!(
        r.status(),
        404,
        "v1 answers 404 when the session's user is not an admin"
    );
    not_admin.stop().await;

    let q = enc("nameINglide.war,glide.buildname");
    let body: Value = c
        .get(&format!(
            "/api/now/table/sys_properties?sysparm_query={q}&sysparm_fields=name,value"
        ))
        .await
        .json()
        .await
        .unwrap();
    let props: Vec<(String, String)> = body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().into(),
                p["value"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        props
            .iter()
            .any(|(n, v)| n == "glide.war" && v.starts_with("glide-washingtondc-")),
        "{props:?}"
    );
    assert!(
        props
            .iter()
            .any(|(n, v)| n == "glide.buildname" && v == "Washington DC"),
        "{props:?}"
    );

    c.control("conditions", json!({"not_admin": true})).await;
    assert_eq!(c.get(&role_check).await.status(), 404);
    sim.stop().await;
}

#[tokio::test]
async fn display_values_and_reference_links() {
    let sim = start(small(), Conditions::default()).await;
    let c = Client::new(&sim);
    let base =
        "/api/now/table/sys_user_has_role?sysparm_limit=1&sysparm_fields=user,sys_created_on";
    let raw: Value = c.get(base).await.json().await.unwrap();
    let rec = &raw["result"][0];
    let user_id = rec["user"]["value"].as_str().unwrap();
    assert_eq!(user_id.len(), 32);
    assert!(rec["user"]["link"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/api/now/table/sys_user/{user_id}")));
    let created = rec["sys_created_on"].as_str().unwrap();
    assert_eq!(created.len(), 19);
    assert_eq!(&created[4..5], "-");

    let ex: Value = c
        .get(&format!("{base}&sysparm_exclude_reference_link=true"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ex["result"][0]["user"], user_id);

    let disp: Value = c
        .get(&format!("{base}&sysparm_display_value=true"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        disp["result"][0]["user"]["display_value"],
        "Connector Service"
    );
    let shown = disp["result"][0]["sys_created_on"].as_str().unwrap();
    assert_ne!(
        shown, created,
        "display values are in the user's zone and format"
    );
    assert!(
        shown.contains('/') && (shown.ends_with("AM") || shown.ends_with("PM")),
        "{shown}"
    );

    let all: Value = c
        .get(&format!("{base}&sysparm_display_value=all"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all["result"][0]["sys_created_on"]["value"], created);
    assert_eq!(all["result"][0]["sys_created_on"]["display_value"], shown);
    assert_eq!(all["result"][0]["user"]["value"], user_id);

    let nc = c.get(&format!("{base}&sysparm_no_count=true")).await;
    assert!(nc.headers().get("x-total-count").is_none());
    sim.stop().await;
}

#[tokio::test]
async fn bearer_tokens_expire_with_the_clock_and_bad_auth_gets_servicenows_401() {
    let sim = start(small(), Conditions::default()).await;
    let c = Client::new(&sim);
    let cfg = sim.state.config.clone();
    let tok: Value = c
        .http
        .post(format!("{}/oauth_token.do", c.base))
        .form(&[
            ("grant_type", "password"),
            ("client_id", &cfg.client_id),
            ("client_secret", &cfg.client_secret),
            ("username", &cfg.username),
            ("password", &cfg.password),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tok["access_token"].as_str().unwrap();
    let url = format!("{}/api/now/table/sys_user?sysparm_limit=1", c.base);
    assert_eq!(
        c.http
            .get(&url)
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    c.control("clock", json!({"advance_secs": 1800})).await;
    let r = c.http.get(&url).bearer_auth(access).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["message"], "User Not Authenticated");
    let r = c
        .http
        .get(&url)
        .basic_auth(&cfg.username, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    sim.stop().await;
}

#[tokio::test]
async fn faults_hibernation_rest_off_rate_limits_errors_cancellation() {
    let sim = start(small(), Conditions::default()).await;
    let c = Client::new(&sim);
    let url = "/api/now/table/sysevent?sysparm_limit=5";

    c.control("conditions", json!({"hibernating": true})).await;
    let r = c.get(url).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let r = c
        .http
        .post(format!("{}/oauth_token.do", c.base))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));

    c.control(
        "conditions",
        json!({"hibernating": false, "rest_api_off": true}),
    )
    .await;
    assert_eq!(c.get(url).await.status(), 403);

    c.control(
        "conditions",
        json!({"rest_api_off": false, "rate_limit_fraction": 1.0, "retry_after_secs": 7}),
    )
    .await;
    let r = c.get(url).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    for h in ["x-ratelimit-limit", "x-ratelimit-reset", "x-ratelimit-rule"] {
        assert!(r.headers().contains_key(h), "{h}");
    }

    c.control(
        "conditions",
        json!({"rate_limit_fraction": 0.0, "rate_limit_per_hour": 2}),
    )
    .await;
    let first = c.get(url).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-ratelimit-limit"], "2");
    assert_eq!(c.get(url).await.status(), 200);
    let r = c.get(url).await;
    assert_eq!(r.status(), 429);
    let reset: i64 = r.headers()["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(reset % 3600, 0, "an hourly rule resets on the hour");

    c.control(
        "conditions",
        json!({"rate_limit_per_hour": null, "error_fraction": 1.0}),
    )
    .await;
    let r = c.get(url).await;
    assert!(r.status() == 500 || r.status() == 503, "{}", r.status());

    c.control(
        "conditions",
        json!({"error_fraction": 0.0, "cancel_above_limit": 1000}),
    )
    .await;
    let r = c.get("/api/now/table/sysevent?sysparm_limit=5000").await;
    assert_eq!(r.status(), 500);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "Transaction cancelled: maximum execution time exceeded"
    );
    assert_eq!(
        c.get("/api/now/table/sysevent?sysparm_limit=1000")
            .await
            .status(),
        200
    );

    let half: Value = c
        .control(
            "conditions",
            json!({"cancel_above_limit": null, "error_fraction": 0.5}),
        )
        .await;
    assert_eq!(half["error_fraction"], 0.5);
    let mut statuses = HashSet::new();
    for _ in 0..60 {
        statuses.insert(c.get(url).await.status().as_u16());
    }
    assert!(
        statuses.contains(&200) && statuses.iter().any(|s| *s >= 500),
        "{statuses:?}"
    );
    sim.stop().await;
}

#[tokio::test]
async fn acl_trimmed_pages_come_back_short_and_truth_leaves_hidden_records_out() {
    let sim = start(
        small(),
        Conditions {
            acl_hidden_fraction: 0.3,
            ..Default::default()
        },
    )
    .await;
    let c = Client::new(&sim);
    let truth = c.truth("sys_audit").await;
    let q = enc("ORDERBYsys_created_on^ORDERBYsys_id");
    let first = format!("/api/now/table/sys_audit?sysparm_query={q}&sysparm_limit=50");
    let r = c.get(&first).await;
    assert_eq!(
        r.headers()["x-total-count"],
        "300",
        "the count includes what ACLs hide"
    );
    let (ids, pages, sizes) = page_through(&c, &first).await;
    assert_eq!(pages, 6);
    assert!(sizes.iter().any(|n| *n < 50), "{sizes:?}");
    assert!(truth.len() < 260 && truth.len() > 150, "{}", truth.len());
    assert_eq!(ids, truth);
    sim.stop().await;
}

#[tokio::test]
async fn late_commits_and_bursts_inserted_through_control() {
    let sim = start(small(), Conditions::default()).await;
    let c = Client::new(&sim);
    let before = c.truth("syslog_transaction").await.len();
    let late: Value = c
        .control(
            "insert",
            json!({"table":"syslog_transaction","count":3,"created_on":"2020-05-05 05:05:05"}),
        )
        .await;
    assert_eq!(late["inserted"], 3);
    let q = enc("sys_created_on<2021-01-01 00:00:00");
    let body: Value = c.get(&format!("/api/now/table/syslog_transaction?sysparm_query={q}&sysparm_fields=sys_id,sys_created_on,remote_ip")).await.json().await.unwrap();
    let got: Vec<&str> = body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sys_id"].as_str().unwrap())
        .collect();
    let want: Vec<&str> = late["sys_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let (mut got, mut want) = (got, want.clone());
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(body["result"][0]["sys_created_on"], "2020-05-05 05:05:05");
    assert_eq!(c.truth("syslog_transaction").await.len(), before + 3);
    sim.stop().await;
}

#[tokio::test]
async fn the_same_seed_gives_the_same_instance() {
    let a = start(small(), Conditions::default()).await;
    let b = start(small(), Conditions::default()).await;
    let c = start(SimConfig { seed: 2, ..small() }, Conditions::default()).await;
    let (ta, tb, tc) = (
        Client::new(&a).truth("sys_audit").await,
        Client::new(&b).truth("sys_audit").await,
        Client::new(&c).truth("sys_audit").await,
    );
    assert_eq!(ta, tb);
    assert_ne!(ta, tc);
    a.stop().await;
    b.stop().await;
    c.stop().await;
}

#[tokio::test]
async fn batch_api_serves_items_base64_and_can_be_switched_off() {
    use base64::Engine;
    let sim = start(small(), Conditions::default()).await;
    let c = Client::new(&sim);
    let body = json!({"batch_request_id":"b1","rest_requests":[
        {"id":"role","method":"GET","url":"/api/now/v2/table/sys_user_has_role?sysparm_query=user.user_name%3Dsvc.connector%5Erole.name%3Dadmin&sysparm_limit=1"},
        {"id":"none","method":"GET","url":"/api/now/table/sysevent?sysparm_query=name%3Dnope","exclude_response_headers":true}
    ]});
    let r = c
        .http
        .post(format!("{}/api/now/v1/batch", c.base))
        .basic_auth(&c.user, Some(&c.password))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["batch_request_id"], "b1");
    let items = v["serviced_requests"].as_array().unwrap();
    assert_eq!(items[0]["status_code"], 200);
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(items[0]["body"].as_str().unwrap())
        .unwrap();
    let page: Value = serde_json::from_slice(&decoded).unwrap();
    assert_eq!(page["result"].as_array().unwrap().len(), 1);
    assert!(items[0]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["name"] == "x-total-count"));
    assert_eq!(
        items[1]["status_code"], 404,
        "v1 inside a batch still answers 404 when empty"
    );
    assert_eq!(items[1]["headers"], json!([]));

    let stats: Value = c
        .http
        .get(format!("{}/__sim/stats", c.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["table_requests"], 1, "a batch is one round trip");

    c.control("conditions", json!({"batch_api_off": true}))
        .await;
    let r = c
        .http
        .post(format!("{}/api/now/v1/batch", c.base))
        .basic_auth(&c.user, Some(&c.password))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .http
        .post(format!("{}/api/now/v1/batch", c.base))
        .basic_auth(&c.user, Some("wrong"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        400,
        "without a Batch API the path does not exist at all"
    );
    sim.stop().await;
}

#[tokio::test]
async fn slow_answers_take_at_least_the_configured_delay() {
    let sim = start(
        small(),
        Conditions {
            slow_ms: 300,
            ..Default::default()
        },
    )
    .await;
    let c = Client::new(&sim);
    let t = std::time::Instant::now();
    assert_eq!(
        c.get("/api/now/table/sys_user?sysparm_limit=1")
            .await
            .status(),
        200
    );
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    c.control("conditions", json!({"slow_ms": 0})).await;
    let t = std::time::Instant::now();
    c.get("/api/now/table/sys_user?sysparm_limit=1").await;
    assert!(t.elapsed() < std::time::Duration::from_millis(300));
    sim.stop().await;
}

#[tokio::test]
async fn audit_records_user_creation_and_role_grants() {
    let sim = start(small(), Conditions::default()).await;
    let c = Client::new(&sim);
    let q = enc("tablename=sys_user^fieldname=user_name^oldvalueISEMPTY");
    let created: Value = c
        .get(&format!(
            "/api/now/v2/table/sys_audit?sysparm_query={q}&sysparm_limit=5"
        ))
        .await
        .json()
        .await
        .unwrap();
    let first = &created["result"][0];
    assert_eq!(first["record_checkpoint"], "0");
    assert!(!first["newvalue"].as_str().unwrap().is_empty());
    let q = enc("tablename=sys_user_has_role^fieldname=role");
    let grants = c
        .get(&format!(
            "/api/now/v2/table/sys_audit?sysparm_query={q}&sysparm_limit=1"
        ))
        .await;
    assert_ne!(grants.headers()["x-total-count"], "0");
    sim.stop().await;
}
