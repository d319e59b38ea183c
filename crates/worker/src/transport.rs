//! Carries core's plain-data requests over `fetch` and brings the answers back
//! as plain data. Redirects are not followed: an instance URL that passed the
//! host policy must not be able to send the worker somewhere else. Every call
//! has its own deadline, so a hung instance costs one bounded wait, not a
//! whole alarm's wall time. Every answer has a size cap: one larger is
//! refused as soon as its length is known or its bytes pass the cap, never
//! read whole (a deployed isolate has 128 MB).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use futures_util::future::{maybe_done, select, Either, MaybeDone};
use snc_core::http::{CallError, CappedBody, HttpRequest, HttpResponse, Method as CoreMethod};
use worker::{
    AbortController, AbortSignal, Delay, Fetch, Headers, Method, Request, RequestInit,
    RequestRedirect,
};

/// The default deadline (`CALL_TIMEOUT_MS` sets another): past ServiceNow's
/// own 60 s transaction limit, which answers a cancelled page by itself, so
/// a call still silent after this is hung.
pub const CALL_DEADLINE: Duration = Duration::from_secs(70);

/// Sends a call to an instance, and gives up (aborting the fetch) after
/// `deadline`; its answer is capped at `SERVICENOW_ANSWER_CAP`.
pub async fn send_within(req: &HttpRequest, deadline: Duration) -> Result<HttpResponse, CallError> {
    send_capped(req, deadline, snc_core::http::SERVICENOW_ANSWER_CAP).await
}

/// Sends, gives up after `deadline`, and reads at most `cap` bytes of the
/// answer.
pub async fn send_capped(
    req: &HttpRequest,
    deadline: Duration,
    cap: usize,
) -> Result<HttpResponse, CallError> {
    let controller = AbortController::default();
    let call = Box::pin(exchange(req, controller.signal(), cap));
    let answer = match select(call, Delay::from(deadline)).await {
        Either::Left((answer, _)) => Some(answer),
        Either::Right(((), _)) => None,
    };
    match answer {
        Some(answer) => answer,
        None => {
            controller.abort();
            Err(CallError::Failed(format!(
                "no answer within {} s",
                deadline.as_secs()
            )))
        }
    }
}

/// Sends a set of reads until each is answered, or `max_calls` calls are
/// spent (the answers so far stay in `reads`); a call the instance does not
/// answer ends it with the transport's error. Returns the calls made.
pub async fn send_reads(
    reads: &mut snc_core::servicenow::batch::Reads,
    instance: &snc_core::servicenow::instance_url::InstanceUrl,
    auth: &snc_core::servicenow::table::ApiAuth,
    deadline: Duration,
    max_calls: u32,
) -> Result<u32, CallError> {
    let mut calls = 0;
    while calls < max_calls {
        let Some(req) = reads.next_request(instance, auth) else {
            break;
        };
        calls += 1;
        reads.handle(send_within(&req, deadline).await?);
    }
    Ok(calls)
}

/// A call sent and not waited for yet.
pub struct InFlight(MaybeDone<CallFuture>);

type CallFuture = Pin<Box<dyn Future<Output = Result<HttpResponse, CallError>>>>;

impl InFlight {
    /// Sends `req` and returns at once, leaving the answer to `answer`.
    pub async fn start(req: HttpRequest, deadline: Duration, cap: usize) -> InFlight {
        let call: CallFuture = Box::pin(async move { send_capped(&req, deadline, cap).await });
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
    pub async fn answer(mut self) -> Result<HttpResponse, CallError> {
        (&mut self.0).await;
        Pin::new(&mut self.0).take_output().unwrap_or_else(|| {
            Err(CallError::Failed(
                "the call's answer was taken twice".into(),
            ))
        })
    }
}

async fn exchange(
    req: &HttpRequest,
    signal: AbortSignal,
    cap: usize,
) -> Result<HttpResponse, CallError> {
    let failed = |e: String| CallError::Failed(e);
    let headers = Headers::new();
    for (k, v) in &req.headers {
        headers
            .set(k, v)
            .map_err(|_| failed("a request header was refused".into()))?;
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
    let request = Request::new_with_init(&req.url, &init).map_err(|e| failed(e.to_string()))?;
    let resp = Fetch::Request(request)
        .send_with_signal(&signal)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = resp.status_code();
    let headers: Vec<(String, String)> = resp.headers().entries().collect();
    // fetch decodes a gzip answer by itself and keeps its headers: the
    // length announced is then the compressed one, and says nothing of
    // what would be read. Only an identity answer's length is trusted.
    let encoded = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("content-encoding") && !v.trim().eq_ignore_ascii_case("identity")
    });
    let announced = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .filter(|_| !encoded);
    let body = capped_body(resp, cap, announced).await?;
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// The body, at most `cap` bytes. An answer whose length is announced and
/// within the cap is gathered by the runtime and crosses into wasm as one
/// copy (`arrayBuffer()`: reading chunk by chunk, a promise and a copy per
/// chunk, was about 8 % of the isolate's time over a backfill); one
/// announced past the cap is not read at all; one without a length is read
/// chunk by chunk and dropped as soon as it passes the cap.
async fn capped_body(
    resp: worker::Response,
    cap: usize,
    announced: Option<usize>,
) -> Result<Vec<u8>, CallError> {
    let mut body = CappedBody::new(cap, announced)?;
    let unreadable =
        |e: String| CallError::Failed(format!("the answer's body could not be read: {e}"));
    if announced.is_some() {
        let resp = web_sys::Response::from(resp);
        let promise = resp
            .array_buffer()
            .map_err(|e| unreadable(format!("{e:?}")))?;
        let buffer = wasm_bindgen_futures::JsFuture::from(promise)
            .await
            .map_err(|e| unreadable(format!("{e:?}")))?;
        let bytes = js_sys::Uint8Array::new(&buffer);
        // A length header can lie: the bytes are checked too.
        if bytes.length() as usize > cap {
            return Err(CallError::TooLarge { cap });
        }
        return Ok(bytes.to_vec());
    }
    let raw = web_sys::Response::from(resp);
    if raw.body().is_none() {
        // No body at all (a 204): nothing to read.
        return Ok(body.finish());
    }
    let mut resp = worker::Response::from(raw);
    let mut stream = resp.stream().map_err(|e| unreadable(e.to_string()))?;
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        body.push(&chunk.map_err(|e| unreadable(e.to_string()))?)?;
    }
    Ok(body.finish())
}
