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
