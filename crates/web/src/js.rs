//! The API's answers, parsed by the browser's `JSON.parse`, read into core's
//! types by hand. serde-wasm-bindgen does this generically, but measured at
//! about 26 KB gzip more wasm (its deserializer, one visitor per type and
//! float formatting for its errors): more than the connect page can carry.
//! What is read here is what the page shows; unknown members are ignored.

use std::future::Future;
use std::pin::Pin;

use snc_core::api::connection::{Backfill, Connection, Status, StatusDetail};
use snc_core::api::health::HealthReport;
use snc_core::api::settings::PageSettings;
use snc_core::connect::warning::{Warning, WarningCode};
use snc_core::problem::{FieldError, Problem};
use wasm_bindgen::prelude::*;

/// One boxed future type for every task the module runs: one copy of the
/// executor's code instead of one per async function.
pub type Task = Pin<Box<dyn Future<Output = Result<JsValue, JsValue>>>>;

pub fn promise(task: Task) -> js_sys::Promise {
    wasm_bindgen_futures::future_to_promise(task)
}

pub fn spawn(task: Task) {
    wasm_bindgen_futures::spawn_local(async move {
        let _ = task.await;
    });
}

/// A JSON object's members.
pub struct Obj<'a>(pub &'a JsValue);

impl Obj<'_> {
    pub fn get(&self, key: &str) -> JsValue {
        js_sys::Reflect::get(self.0, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    }
    pub fn str(&self, key: &str) -> Option<String> {
        self.get(key).as_string()
    }
    pub fn text(&self, key: &str) -> String {
        self.str(key).unwrap_or_default()
    }
    pub fn count(&self, key: &str) -> u64 {
        // JSON numbers are f64; counts are whole and far below 2^53.
        self.get(key)
            .as_f64()
            .filter(|n| *n >= 0.0)
            .map_or(0, |n| n as u64)
    }
    pub fn flag(&self, key: &str) -> bool {
        self.get(key).as_bool().unwrap_or(false)
    }
    pub fn list(&self, key: &str) -> Vec<JsValue> {
        let v = self.get(key);
        if js_sys::Array::is_array(&v) {
            js_sys::Array::from(&v).iter().collect()
        } else {
            Vec::new()
        }
    }
}

/// What the page offers a caller whose scopes are `scopes` (GET /me's
/// list, a JavaScript array of strings; unknown ones are left out): core's
/// `PageSections`, for the page's routes and the admin views alike.
pub fn page_sections(scopes: &JsValue) -> snc_core::api::access::PageSections {
    use snc_core::api::access::{PageSections, Scope};
    let scopes: Vec<Scope> = js_sys::Array::from(scopes)
        .iter()
        .filter_map(|s| Scope::parse(&s.as_string()?))
        .collect();
    PageSections::for_scopes(&scopes)
}

/// Reading one of core's types from parsed JSON; `None` when it is not one.
pub trait FromJs: Sized {
    fn from_js(value: &JsValue) -> Option<Self>;
}

impl FromJs for Problem {
    fn from_js(value: &JsValue) -> Option<Problem> {
        let o = Obj(value);
        let code = o.str("code")?;
        Some(Problem {
            type_uri: o.text("type"),
            title: o.text("title"),
            status: u16::try_from(o.count("status")).unwrap_or(0),
            detail: o.text("detail"),
            code,
            errors: o
                .list("errors")
                .iter()
                .map(|e| {
                    let e = Obj(e);
                    FieldError {
                        field: e.text("field"),
                        code: e.text("code"),
                        message: e.text("message"),
                    }
                })
                .collect(),
            retry_after: o.get("retry_after").as_f64().map(|n| n.max(0.0) as u64),
        })
    }
}

impl FromJs for Connection {
    fn from_js(value: &JsValue) -> Option<Connection> {
        let o = Obj(value);
        let b = o.get("backfill");
        let b = Obj(&b);
        let detail = o.get("status_detail");
        let optional = |k: &str| o.str(k);
        Some(Connection {
            id: o.str("id")?,
            name: o.text("name"),
            instance_url: o.text("instance_url"),
            method: o.text("method"),
            enabled: o.flag("enabled"),
            status: Status::parse(&o.text("status"))?,
            status_detail: detail.is_object().then(|| {
                let d = Obj(&detail);
                StatusDetail {
                    code: d.text("code"),
                    message: d.text("message"),
                    since: d.text("since"),
                }
            }),
            warnings: o
                .list("warnings")
                .iter()
                .map(|w| Warning {
                    code: WarningCode::parse(&Obj(w).text("code")),
                    message: Obj(w).text("message"),
                })
                .collect(),
            release: optional("release"),
            build: optional("build"),
            created_at: o.text("created_at"),
            last_pull_at: optional("last_pull_at"),
            next_pull_at: optional("next_pull_at"),
            backfill: Backfill {
                from: b.text("from"),
                to: b.text("to"),
                done: b.flag("done"),
                events: b.count("events"),
                total: b.count("total"),
            },
            event_count: o.count("event_count"),
            posture_score: o
                .get("posture_score")
                .as_f64()
                .map(|n| n.clamp(0.0, 100.0) as u8),
            open_alerts: o.count("open_alerts"),
            pull_interval_secs: o
                .get("pull_interval_secs")
                .as_f64()
                .map(|n| n.clamp(0.0, f64::from(u32::MAX)) as u32),
        })
    }
}

impl FromJs for PageSettings {
    fn from_js(value: &JsValue) -> Option<PageSettings> {
        let o = Obj(value);
        let days = o.get("backfill_days").as_f64()?;
        // The page needs the policy and the days; the methods are its own.
        Some(PageSettings {
            instance_hosts: o.text("instance_hosts"),
            allow_loopback_instances: o.flag("allow_loopback_instances"),
            backfill_days: days as i64,
            methods: Vec::new(),
        })
    }
}

impl FromJs for HealthReport {
    fn from_js(value: &JsValue) -> Option<HealthReport> {
        let o = Obj(value);
        Some(HealthReport {
            status: o.str("status")?,
            version: o.str("version")?,
            access: o.flag("access"),
        })
    }
}

/// A problem as the JavaScript views and the embed's `connect-error` event
/// read it: the API's own shape.
pub fn problem_to_js(p: &Problem) -> JsValue {
    let o = js_sys::Object::new();
    let set = |k: &str, v: JsValue| {
        let _ = js_sys::Reflect::set(&o, &JsValue::from_str(k), &v);
    };
    set("type", p.type_uri.as_str().into());
    set("title", p.title.as_str().into());
    set("status", p.status.into());
    set("detail", p.detail.as_str().into());
    set("code", p.code.as_str().into());
    if !p.errors.is_empty() {
        let list = js_sys::Array::new();
        for e in &p.errors {
            let item = js_sys::Object::new();
            for (k, v) in [
                ("field", &e.field),
                ("code", &e.code),
                ("message", &e.message),
            ] {
                let _ = js_sys::Reflect::set(&item, &JsValue::from_str(k), &JsValue::from_str(v));
            }
            list.push(&item);
        }
        set("errors", list.into());
    }
    if let Some(s) = p.retry_after {
        set("retry_after", JsValue::from_f64(s as f64));
    }
    o.into()
}
