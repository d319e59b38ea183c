//! Runs in headless Chromium through wasm-bindgen-test-runner.
#![cfg(target_arch = "wasm32")]

use snc_core::api::health::HealthReport;
use snc_core::problem::Problem;
use snc_web::render_health;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn element() -> web_sys::Element {
    let doc = web_sys::window().unwrap().document().unwrap();
    let el = doc.create_element("span").unwrap();
    doc.body().unwrap().append_child(&el).unwrap();
    el
}

#[wasm_bindgen_test]
fn shows_the_version_as_text() {
    let el = element();
    let report = HealthReport {
        status: "ok".into(),
        version: "<b>9.9.9</b>".into(),
        access: false,
    };
    render_health(&el, &Ok(report));
    assert_eq!(el.text_content().unwrap(), "v<b>9.9.9</b>");
    // Rendered as text: no element was created from the version string.
    assert_eq!(el.child_element_count(), 0);
    assert_eq!(el.get_attribute("data-state").unwrap(), "ok");
}

#[wasm_bindgen_test]
fn shows_what_to_do_when_the_worker_answers_wrongly() {
    let el = element();
    let mut p = Problem::new(snc_core::problem::ProblemCode::Internal);
    p.title = "Unexpected answer (HTTP 503)".into();
    render_health(&el, &Err(p));
    let text = el.text_content().unwrap();
    assert!(
        text.contains("HTTP 503") && text.to_lowercase().contains("try again"),
        "{text}"
    );
    assert_eq!(el.get_attribute("data-state").unwrap(), "error");
}

#[wasm_bindgen_test]
async fn an_unreachable_worker_is_reported_not_panicked() {
    let el = element();
    // Port 9 (discard) on loopback: nothing answers HTTP there.
    JsFuture::from(snc_web::show_health(
        "http://127.0.0.1:9".into(),
        el.clone(),
    ))
    .await
    .unwrap();
    assert_eq!(el.get_attribute("data-state").unwrap(), "error");
    let text = el.text_content().unwrap();
    assert!(text.contains("could not be reached"), "{text}");
}

#[wasm_bindgen_test]
async fn the_client_reports_an_unreachable_connector_with_its_own_code() {
    let answer = JsFuture::from(snc_web::api_call(
        "http://127.0.0.1:9".into(),
        "snck_x".into(),
        "GET".into(),
        "/me".into(),
        wasm_bindgen::JsValue::UNDEFINED,
    ))
    .await
    .unwrap();
    let get = |o: &wasm_bindgen::JsValue, k: &str| js_sys::Reflect::get(o, &k.into()).unwrap();
    assert_eq!(get(&answer, "ok"), wasm_bindgen::JsValue::FALSE);
    let problem: Problem = serde_wasm_bindgen::from_value(get(&answer, "problem")).unwrap();
    assert_eq!(problem.code, snc_core::problem::CONNECTOR_UNREACHABLE);
    // A method the API does not have is refused before anything is sent.
    let answer = JsFuture::from(snc_web::api_call(
        "http://127.0.0.1:9".into(),
        wasm_bindgen::JsValue::NULL,
        "PROPFIND".into(),
        "/me".into(),
        wasm_bindgen::JsValue::UNDEFINED,
    ))
    .await
    .unwrap();
    let problem: Problem = serde_wasm_bindgen::from_value(get(&answer, "problem")).unwrap();
    assert_eq!(problem.code, "method_not_allowed");
}

#[wasm_bindgen_test]
fn field_validation_in_the_browser_matches_core() {
    let ok = snc_web::validate_field("instance_url", "acme", None, false);
    assert!(ok.is_null());
    let bad = snc_web::validate_field("instance_url", "https://169.254.169.254", None, false);
    let e: snc_core::problem::FieldError = serde_wasm_bindgen::from_value(bad).unwrap();
    let core = snc_core::connect::input::check_field(
        "instance_url",
        "https://169.254.169.254",
        &Default::default(),
    )
    .unwrap_err();
    assert_eq!(e, core);
    assert_eq!(e.code, "instance_url_forbidden");
    // Loopback only when the page says the worker allows it.
    assert!(
        !snc_web::validate_field("instance_url", "http://127.0.0.1:8788", None, false).is_null()
    );
    assert!(snc_web::validate_field("instance_url", "http://127.0.0.1:8788", None, true).is_null());
}

/// The page reads answers by hand (no serde in the wasm): what the worker
/// writes with serde must read back the same.
#[wasm_bindgen_test]
fn hand_readers_match_what_the_worker_writes() {
    use snc_core::api::connection::{Backfill, Connection, Status, StatusDetail};
    use snc_web::js::{problem_to_js, FromJs};
    let connection = Connection {
        id: "c-1".into(),
        name: "Prod <b>".into(),
        instance_url: "https://acme.service-now.com".into(),
        method: "oauth".into(),
        enabled: true,
        status: Status::Error,
        status_detail: Some(StatusDetail {
            code: "credentials_rejected".into(),
            message: "m".into(),
            since: "2026-11-27T00:00:00Z".into(),
        }),
        warnings: vec![snc_core::connect::warning::Warning {
            code: snc_core::connect::warning::WarningCode::PullsFailing,
            message: "a warning".into(),
        }],
        release: Some("Xanadu".into()),
        build: None,
        created_at: "2026-11-27T00:00:00Z".into(),
        last_pull_at: None,
        next_pull_at: Some("2026-11-27T00:05:00Z".into()),
        backfill: Backfill {
            from: "a".into(),
            to: "b".into(),
            done: false,
            events: 1234,
            total: 5000,
        },
        event_count: 1234,
        posture_score: Some(87),
        open_alerts: 2,
        pull_interval_secs: Some(60),
    };
    let written = serde_wasm_bindgen::Serializer::json_compatible();
    let js = serde::Serialize::serialize(&connection, &written).unwrap();
    assert_eq!(Connection::from_js(&js), Some(connection));
    let mut problem = snc_core::problem::Problem::validation(vec![snc_core::problem::FieldError {
        field: "name".into(),
        code: "required".into(),
        message: "Give the connection a name.".into(),
    }]);
    problem.retry_after = Some(30);
    let js = serde::Serialize::serialize(&problem, &written).unwrap();
    assert_eq!(
        snc_core::problem::Problem::from_js(&js),
        Some(problem.clone())
    );
    // And what the page hands to JavaScript is the API's own shape.
    let back: snc_core::problem::Problem =
        serde_wasm_bindgen::from_value(problem_to_js(&problem)).unwrap();
    assert_eq!(back, problem);
    let settings = snc_core::api::settings::PageSettings::new(
        "example.org",
        snc_core::servicenow::instance_url::Loopback::Allowed,
        14,
    );
    let js = serde::Serialize::serialize(&settings, &written).unwrap();
    // The page reads the policy and the days; the methods are its own.
    let read = snc_core::api::settings::PageSettings::from_js(&js).unwrap();
    assert_eq!(read.host_policy(), settings.host_policy());
    assert_eq!(read.backfill_days, 14);
    assert_eq!(Connection::from_js(&wasm_bindgen::JsValue::NULL), None);
}
