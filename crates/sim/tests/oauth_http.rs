//! The OAuth endpoint over real HTTP, as a client would meet it.

async fn start() -> snc_sim::SimHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    snc_sim::start(snc_sim::SimConfig::default(), listener)
        .await
        .unwrap()
}

#[tokio::test]
async fn password_grant_form_body_and_basic_header() {
    let sim = start().await;
    let c = sim.state.config.clone();
    let url = format!("{}/oauth_token.do", sim.instance_url());
    let http = reqwest::Client::new();

    let body = format!(
        "grant_type=password&client_id={}&client_secret={}&username={}&password={}",
        c.client_id, c.client_secret, c.username, "Sim-Passw0rd%21"
    );
    let r = http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 1799);
    assert!(v["refresh_token"].as_str().unwrap().len() > 40);

    let r = http
        .post(&url)
        .basic_auth(&c.client_id, Some(&c.client_secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=refresh_token&refresh_token={}",
            v["refresh_token"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    sim.stop().await;
}

#[tokio::test]
async fn wrong_password_and_json_body_get_servicenows_opaque_401() {
    let sim = start().await;
    let c = sim.state.config.clone();
    let url = format!("{}/oauth_token.do", sim.instance_url());
    let http = reqwest::Client::new();
    let r = http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=password&client_id={}&client_secret={}&username={}&password=wrong",
            c.client_id, c.client_secret, c.username
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.text().await.unwrap(), snc_sim::oauth::ACCESS_DENIED_BODY);

    let r = http
        .post(&url)
        .json(&serde_json::json!({"grant_type":"password","client_id":c.client_id,"client_secret":c.client_secret,"username":c.username,"password":c.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    sim.stop().await;
}

#[tokio::test]
async fn client_credentials_act_as_the_application_user_without_a_refresh_token() {
    let sim = start().await;
    let c = sim.state.config.clone();
    let base = sim.instance_url();
    let http = reqwest::Client::new();
    let grant = |secret: &str| {
        http.post(format!("{base}/oauth_token.do"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=client_credentials&client_id={}&client_secret={secret}",
                c.client_id
            ))
            .send()
    };
    assert_eq!(grant("wrong").await.unwrap().status(), 401);
    let v: serde_json::Value = grant(&c.client_secret).await.unwrap().json().await.unwrap();
    assert!(v.get("refresh_token").is_none(), "{v}");
    let token = v["access_token"].as_str().unwrap();
    // `gs.getUserID()` is the application's user, not the service account.
    let me: serde_json::Value = http
        .get(format!(
            "{base}/api/now/table/sys_user?sysparm_query=sys_id%3Djavascript:gs.getUserID()&sysparm_fields=user_name,web_service_access_only"
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["result"][0]["user_name"], c.app_user.as_str());
    assert_eq!(me["result"][0]["web_service_access_only"], "true");
    sim.stop().await;
}

#[tokio::test]
async fn the_basic_auth_restriction_denies_interactive_accounts_and_shows_in_sys_properties() {
    let sim = start().await;
    let c = sim.state.config.clone();
    let base = sim.instance_url();
    let http = reqwest::Client::new();
    let read = || {
        http.get(format!(
            "{base}/api/now/table/sys_properties?sysparm_query=name%3Dglide.authenticate.basic_auth.restriction.active&sysparm_fields=value"
        ))
        .basic_auth(&c.username, Some(&c.password))
        .send()
    };
    // Absent until switched on (Table API v1 answers 404 when nothing matches).
    assert_eq!(read().await.unwrap().status(), 404);
    let set = |patch: serde_json::Value| {
        http.post(format!("{base}/__sim/conditions"))
            .json(&patch)
            .send()
    };
    set(serde_json::json!({"basic_auth_restricted": true}))
        .await
        .unwrap();
    let v: serde_json::Value = read().await.unwrap().json().await.unwrap();
    assert_eq!(v["result"][0]["value"], "true");
    let recorded: serde_json::Value = http
        .get(format!(
            "{base}/api/now/table/sys_user_basic_auth_exception?sysparm_display_value=true"
        ))
        .basic_auth(&c.username, Some(&c.password))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        recorded["result"].as_array().unwrap().len(),
        1,
        "{recorded}"
    );
    assert_eq!(
        recorded["result"][0]["user"]["display_value"],
        c.username.as_str()
    );
    set(serde_json::json!({"basic_auth_denying": true}))
        .await
        .unwrap();
    assert_eq!(read().await.unwrap().status(), 401);
    sim.stop().await;
}
