//! Carries core's plain-data requests over `fetch` and brings the answers back
//! as plain data. Redirects are not followed: an instance URL that passed the
//! host policy must not be able to send the worker somewhere else.

use snc_core::http::{HttpRequest, HttpResponse, Method as CoreMethod};
use worker::{Fetch, Headers, Method, Request, RequestInit, RequestRedirect};

pub async fn send(req: &HttpRequest) -> Result<HttpResponse, String> {
    let headers = Headers::new();
    for (k, v) in &req.headers {
        headers
            .set(k, v)
            .map_err(|_| "a request header was refused".to_string())?;
    }
    let mut init = RequestInit::new();
    init.with_method(match req.method {
        CoreMethod::Get => Method::Get,
        CoreMethod::Post => Method::Post,
    })
    .with_headers(headers)
    .with_redirect(RequestRedirect::Manual);
    if !req.body.is_empty() {
        init.with_body(Some(js_sys::Uint8Array::from(req.body.as_slice()).into()));
    }
    let request = Request::new_with_init(&req.url, &init).map_err(|e| e.to_string())?;
    let mut resp = Fetch::Request(request)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status_code();
    let headers = resp.headers().entries().collect();
    let body = resp.bytes().await.map_err(|e| e.to_string())?;
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}
