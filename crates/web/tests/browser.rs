//! Runs in headless Chromium through wasm-bindgen-test-runner.
#![cfg(target_arch = "wasm32")]

use snc_core::health::HealthReport;
use snc_web::{render_health, ApiError};
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
    render_health(&el, &Err(ApiError::Unexpected { status: 503 }));
    let text = el.text_content().unwrap();
    assert!(text.contains("HTTP 503"), "{text}");
    assert_eq!(el.get_attribute("data-state").unwrap(), "error");
}

#[wasm_bindgen_test]
async fn an_unreachable_worker_is_reported_not_panicked() {
    let el = element();
    // Port 9 (discard) on loopback: nothing answers HTTP there.
    snc_web::show_health("http://127.0.0.1:9".into(), el.clone()).await;
    assert_eq!(el.get_attribute("data-state").unwrap(), "error");
}

#[wasm_bindgen_test]
fn field_validation_in_the_browser_matches_core() {
    let ok = snc_web::validate_field("instance_url", "acme", None, false);
    assert!(ok.is_null());
    let bad = snc_web::validate_field("instance_url", "https://169.254.169.254", None, false);
    let e: snc_core::problem::FieldError = serde_wasm_bindgen::from_value(bad).unwrap();
    let core = snc_core::input::check_field(
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
