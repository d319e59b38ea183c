//! The page's one HTTP client, on gloo-net. Every call to the connector goes
//! through `ApiClient::call`: the wizard's from Rust, the admin views'
//! through the exported `apiCall`. Answers are parsed by the browser's
//! `JSON.parse` and read into core's types by `js::FromJs`, so no JSON parser
//! is compiled into the page.

use gloo_net::http::{Method, RequestBuilder};
use snc_core::api::routes::ApiMethod;
use snc_core::problem::Problem;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::js::{problem_to_js, FromJs};

/// What a call is authenticated with.
pub enum Credential {
    /// Nothing: behind Cloudflare Access the edge vouches for the page.
    None,
    /// The admin token or an API key, as typed at sign-in.
    Fixed(String),
    /// A JavaScript function `(renew) => ticket` (or a promise of one): a
    /// portal's connect ticket, which can run out and be fetched again.
    Renewable(js_sys::Function),
}

/// Whether a renewable credential is asked for the one it has or a new one.
#[derive(Clone, Copy)]
enum Ask {
    Current,
    Renewed,
}

impl Credential {
    pub fn from_js(value: &JsValue) -> Credential {
        if let Some(f) = value.dyn_ref::<js_sys::Function>() {
            return Credential::Renewable(f.clone());
        }
        match value.as_string() {
            Some(s) if !s.is_empty() => Credential::Fixed(s),
            _ => Credential::None,
        }
    }

    async fn value(&self, ask: Ask) -> Option<String> {
        match self {
            Credential::None => None,
            Credential::Fixed(s) => Some(s.clone()),
            Credential::Renewable(f) => {
                let renew = JsValue::from_bool(matches!(ask, Ask::Renewed));
                let mut out = f.call1(&JsValue::NULL, &renew).ok()?;
                if let Some(p) = out.dyn_ref::<js_sys::Promise>() {
                    out = JsFuture::from(p.clone()).await.ok()?;
                }
                out.as_string().filter(|s| !s.is_empty())
            }
        }
    }
}

/// A successful answer: its status and its JSON body (`null` for none).
pub struct Answer {
    pub status: u16,
    pub json: JsValue,
}

impl Answer {
    /// The body as one of core's types.
    pub fn parse<T: FromJs>(&self) -> Result<T, Problem> {
        T::from_js(&self.json)
            .ok_or_else(|| unexpected(self.status, "The answer did not have the expected shape."))
    }
}

#[cfg(feature = "admin")]
impl Answer {
    /// The body as one of core's types, through serde-wasm-bindgen.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, Problem> {
        serde_wasm_bindgen::from_value(self.json.clone()).map_err(|e| {
            unexpected(
                self.status,
                &format!("The answer did not have the expected shape ({e})."),
            )
        })
    }
}

pub struct ApiClient {
    base: String,
    credential: Credential,
}

impl ApiClient {
    pub fn new(base: &str, credential: Credential) -> ApiClient {
        ApiClient {
            base: base.trim_end_matches('/').to_string(),
            credential,
        }
    }

    /// One call. A refused renewable credential (401, or 403 on a second
    /// connect with a spent ticket) is renewed and the call sent once more,
    /// only if the credential changed: a wrong token is not sent twice.
    /// `Err` is the API's problem, or `connector_unreachable` when no answer
    /// came at all.
    pub async fn call(
        &self,
        method: ApiMethod,
        path: &str,
        body: Option<&str>,
    ) -> Result<Answer, Problem> {
        let first = self.credential.value(Ask::Current).await;
        let mut response = self.send(method, path, body, first.as_deref()).await?;
        let status = response.status();
        let ran_out =
            status == 401 || (status == 403 && method == ApiMethod::Post && path == "/connections");
        if ran_out && matches!(self.credential, Credential::Renewable(_)) {
            let renewed = self.credential.value(Ask::Renewed).await;
            if renewed.is_some() && renewed != first {
                response = self.send(method, path, body, renewed.as_deref()).await?;
            }
        }
        let status = response.status();
        if status == 401 {
            // The sign-in was refused (a key revoked while the tab was
            // open): the hosted page signs out once, whichever view asked
            // (a portal's page has no listener: its ticket was renewed
            // above when it could be).
            if let Some(w) = web_sys::window() {
                if let Ok(ev) = web_sys::Event::new("snc-unauthorized") {
                    let _ = w.dispatch_event(&ev);
                }
            }
        }
        let text = response
            .text()
            .await
            .map_err(|e| Problem::connector_unreachable(&e.to_string()))?;
        let json = if text.is_empty() {
            JsValue::NULL
        } else {
            js_sys::JSON::parse(&text).unwrap_or(JsValue::NULL)
        };
        if (200..300).contains(&status) {
            return Ok(Answer { status, json });
        }
        Err(Problem::from_js(&json)
            .unwrap_or_else(|| unexpected(status, "The answer was not a problem report.")))
    }

    /// A GET whose answer is one of core's types.
    pub async fn get<T: FromJs>(&self, path: &str) -> Result<T, Problem> {
        self.call(ApiMethod::Get, path, None).await?.parse()
    }

    /// A GET whose answer is one of core's serde types.
    #[cfg(feature = "admin")]
    pub async fn fetch<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, Problem> {
        self.call(ApiMethod::Get, path, None).await?.decode()
    }

    async fn send(
        &self,
        method: ApiMethod,
        path: &str,
        body: Option<&str>,
        credential: Option<&str>,
    ) -> Result<gloo_net::http::Response, Problem> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut request = RequestBuilder::new(&url).method(match method {
            ApiMethod::Get => Method::GET,
            ApiMethod::Post => Method::POST,
            ApiMethod::Patch => Method::PATCH,
            ApiMethod::Delete => Method::DELETE,
        });
        if let Some(c) = credential {
            // A header value must be visible ASCII (gloo-net would throw
            // on anything else): a token or key always is, so a pasted
            // symbol or space is refused here, as a wrong credential.
            if !c.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(page_problem(
                    "unauthorized",
                    401,
                    "That credential cannot be right".into(),
                    "It holds a character no token, key or ticket has (a space or a symbol pasted with it?). Paste it again.".into(),
                ));
            }
            request = request.header("authorization", &format!("Bearer {c}"));
        }
        let request = match body {
            Some(b) => request.header("content-type", "application/json").body(b),
            None => request.build(),
        };
        let request = request.map_err(|e| Problem::connector_unreachable(&e.to_string()))?;
        request
            .send()
            .await
            .map_err(|e| Problem::connector_unreachable(&e.to_string()))
    }
}

/// A problem the page itself finds. Built here rather than with
/// `Problem::new`, which would bring the whole catalog's texts into the page.
fn page_problem(code: &str, status: u16, title: String, detail: String) -> Problem {
    Problem {
        type_uri: format!("https://servicenow-connector.dev/problems/{code}"),
        title,
        status,
        detail,
        code: code.into(),
        errors: Vec::new(),
        retry_after: None,
    }
}

/// An answer that is neither what was asked for nor a problem report (a
/// proxy's error page, say).
fn unexpected(status: u16, what: &str) -> Problem {
    page_problem(
        "internal",
        status,
        format!("Unexpected answer (HTTP {status})"),
        format!("{what} Check the connector's address; if it is right, try again later."),
    )
}

/// `{ok: true, status, json}` or `{ok: false, status, problem}`, the shape
/// the JavaScript views read.
fn outcome_to_js(outcome: Result<Answer, Problem>) -> JsValue {
    let o = js_sys::Object::new();
    let set = |k: &str, v: &JsValue| {
        let _ = js_sys::Reflect::set(&o, &JsValue::from_str(k), v);
    };
    match outcome {
        Ok(a) => {
            set("ok", &JsValue::TRUE);
            set("status", &JsValue::from(a.status));
            set("json", &a.json);
        }
        Err(p) => {
            set("ok", &JsValue::FALSE);
            set("status", &JsValue::from(p.status));
            set("problem", &problem_to_js(&p));
        }
    }
    o.into()
}

/// The client for the JavaScript views: `apiCall(base, credential, method,
/// path, body)`, where `credential` is a string, null or a renewing function
/// and `body` any JSON-able value (or undefined).
#[wasm_bindgen(js_name = apiCall)]
pub fn api_call(
    base: String,
    credential: JsValue,
    method: String,
    path: String,
    body: JsValue,
) -> js_sys::Promise {
    crate::js::promise(Box::pin(async move {
        let Some(method) = ApiMethod::parse(&method) else {
            return Ok(outcome_to_js(Err(page_problem(
                "method_not_allowed",
                405,
                "Method not allowed".into(),
                format!("The page asked for the method {method}, which the API does not have. Reload the page; if this stays, report it."),
            ))));
        };
        let text = if body.is_undefined() {
            None
        } else {
            js_sys::JSON::stringify(&body)
                .ok()
                .and_then(|s| s.as_string())
        };
        let client = ApiClient::new(&base, Credential::from_js(&credential));
        Ok(outcome_to_js(
            client.call(method, &path, text.as_deref()).await,
        ))
    }))
}

#[cfg(feature = "connect")]
pub async fn health(api_base: &str) -> Result<snc_core::api::health::HealthReport, Problem> {
    let report: snc_core::api::health::HealthReport = ApiClient::new(api_base, Credential::None)
        .get("/health")
        .await?;
    if report.status == "ok" && !report.version.is_empty() {
        Ok(report)
    } else {
        Err(unexpected(200, "The health report did not say ok."))
    }
}
