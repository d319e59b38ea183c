//! Carries core's plain-data requests over `fetch` and brings the answers back
//! as plain data. Redirects are not followed: an instance URL that passed the
//! host policy must not be able to send the worker somewhere else. Every call
//! has its own deadline, so a hung instance costs one bounded wait, not a
//! whole alarm's wall time.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use futures_util::future::{maybe_done, select, Either, MaybeDone};
use snc_core::http::{HttpRequest, HttpResponse, Method as CoreMethod};
use worker::{
    AbortController, AbortSignal, Delay, Fetch, Headers, Method, Request, RequestInit,
    RequestRedirect,
};

/// The default deadline (`CALL_TIMEOUT_MS` sets another): past ServiceNow's
/// own 60 s transaction limit, which answers a cancelled page by itself, so
/// a call still silent after this is hung.
pub const CALL_DEADLINE: Duration = Duration::from_secs(70);

/// Sends, and gives up (aborting the fetch) after `deadline`.
pub async fn send_within(req: &HttpRequest, deadline: Duration) -> Result<HttpResponse, String> {
    let controller = AbortController::default();
    let call = Box::pin(exchange(req, controller.signal()));
    let answer = match select(call, Delay::from(deadline)).await {
        Either::Left((answer, _)) => Some(answer),
        Either::Right(((), _)) => None,
    };
    match answer {
        Some(answer) => answer,
        None => {
            controller.abort();
            Err(format!("no answer within {} s", deadline.as_secs()))
        }
    }
}

/// A call sent and not waited for yet.
pub struct InFlight(MaybeDone<CallFuture>);

type CallFuture = Pin<Box<dyn Future<Output = Result<HttpResponse, String>>>>;

impl InFlight {
    /// Sends `req` and returns at once, leaving the answer to `answer`.
    pub async fn start(req: HttpRequest, deadline: Duration) -> InFlight {
        let call: CallFuture = Box::pin(async move { send_within(&req, deadline).await });
        let mut call = maybe_done(call);
        // Futures are lazy: one poll runs the call as far as `fetch`. The
        // runtime writes the request out only once this turn yields to the
        // event loop, and the thread is busy with a page after this.
        std::future::poll_fn(|cx| {
            let _ = Pin::new(&mut call).poll(cx);
            Poll::Ready(())
        })
        .await;
        Delay::from(Duration::ZERO).await;
        InFlight(call)
    }

    /// The answer (or the transport's failure).
    pub async fn answer(mut self) -> Result<HttpResponse, String> {
        (&mut self.0).await;
        Pin::new(&mut self.0)
            .take_output()
            .unwrap_or_else(|| Err("the call's answer was taken twice".into()))
    }
}

async fn exchange(req: &HttpRequest, signal: AbortSignal) -> Result<HttpResponse, String> {
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
    let resp = Fetch::Request(request)
        .send_with_signal(&signal)
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status_code();
    let headers = resp.headers().entries().collect();
    let body = whole_body(resp).await?;
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// The body in one piece: `arrayBuffer()` gathers it in the runtime and it
/// crosses into wasm as one copy. (`Response::bytes` reads the stream chunk
/// by chunk, a promise and a copy per chunk and a growing buffer: about
/// 8 % of the isolate's time over a backfill in a CPU profile.)
async fn whole_body(resp: worker::Response) -> Result<Vec<u8>, String> {
    let resp = web_sys::Response::from(resp);
    let promise = resp
        .array_buffer()
        .map_err(|_| "the answer's body could not be read".to_string())?;
    let buffer = wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .map_err(|e| format!("the answer's body could not be read: {e:?}"))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}
