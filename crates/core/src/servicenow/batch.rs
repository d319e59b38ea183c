//! The Batch API (`POST /api/now/v1/batch`): several Table API reads in one
//! round trip. The preflight uses it for its checks; pulls use it to read the
//! next page of every table at once, which is what a caught-up connection
//! needs each schedule (one call instead of six).

use base64::Engine;
use serde::Deserialize;

use crate::http::{HttpRequest, HttpResponse, Method};
use crate::problem::{Problem, ProblemCode};
use crate::servicenow::answers::{classify_failure, is_html};
use crate::servicenow::instance_url::InstanceUrl;
use crate::servicenow::table::{self, ApiAuth};

/// One request of a batch: `(id, path)`, the path relative to the instance.
pub type BatchItem = (String, String);

pub fn request(
    instance: &InstanceUrl,
    auth: &ApiAuth,
    batch_id: &str,
    items: &[BatchItem],
) -> HttpRequest {
    let rest_requests: Vec<_> = items
        .iter()
        .map(|(id, path)| {
            serde_json::json!({
                "id": id,
                "method": "GET",
                "url": path,
                "exclude_response_headers": false,
                "headers": [{"name": "Accept", "value": "application/json"}],
            })
        })
        .collect();
    let body = serde_json::json!({"batch_request_id": batch_id, "rest_requests": rest_requests});
    HttpRequest {
        method: Method::Post,
        url: instance.join("/api/now/v1/batch"),
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("Accept".into(), "application/json".into()),
            ("Authorization".into(), auth.header_value()),
        ],
        body: serde_json::to_vec(&body).unwrap_or_default(),
    }
}

#[derive(Deserialize)]
struct Answer {
    serviced_requests: Vec<Serviced>,
}

#[derive(Deserialize)]
struct Serviced {
    id: String,
    status_code: u16,
    #[serde(default)]
    body: String,
    #[serde(default)]
    headers: Vec<Header>,
}

#[derive(Deserialize)]
struct Header {
    name: String,
    value: String,
}

/// The serviced items of a batch answer as plain responses (their bodies
/// come base64-encoded). `None` when the answer is not a batch answer at all;
/// items the instance did not service (time limit) are simply absent.
pub fn parse(resp: &HttpResponse) -> Option<Vec<(String, HttpResponse)>> {
    if resp.status != 200 {
        return None;
    }
    let answer: Answer = serde_json::from_slice(&resp.body).ok()?;
    answer
        .serviced_requests
        .into_iter()
        .map(|item| {
            let engine = &base64::engine::general_purpose::STANDARD;
            // Some releases wrap the base64 text; most do not, so only then
            // pay for a cleaned copy.
            let body = if item.body.bytes().any(|b| b.is_ascii_whitespace()) {
                let cleaned: String = item.body.split_ascii_whitespace().collect();
                engine.decode(cleaned)
            } else {
                engine.decode(&item.body)
            }
            .ok()?;
            let headers = item
                .headers
                .into_iter()
                .map(|h| (h.name, h.value))
                .collect();
            Some((
                item.id,
                HttpResponse {
                    status: item.status_code,
                    headers,
                    body,
                },
            ))
        })
        .collect()
}

/// How a set of reads reaches the instance: in one Batch API call, or one
/// Table API call each where there is no Batch API (releases before London,
/// or the API turned off; the connect check warns `table_access_unchecked`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadRoute {
    Batch,
    OneByOne,
}

/// A set of GET reads whose answers are wanted together (the posture's five
/// reads, the inventory's next page of each table), whichever way they
/// travel. Sans-IO: the caller sends `next_request` and hands each answer to
/// `handle` until there is none, then takes `answers`. A Batch API call the
/// instance refuses as unknown (400, 404 or 405) turns the same reads into
/// one call each, so an instance that lost its Batch API after connect is
/// still read.
#[derive(Debug)]
pub struct Reads {
    batch_id: &'static str,
    items: Vec<BatchItem>,
    route: ReadRoute,
    /// Items answered (one by one).
    sent: usize,
    answers: Vec<(String, HttpResponse)>,
    /// The whole call's failing answer: a refused token, a rate limit, an
    /// outage or a hibernation page; nothing more is sent.
    failed: Option<HttpResponse>,
    finished: bool,
}

impl Reads {
    pub fn new(batch_id: &'static str, items: Vec<BatchItem>, route: ReadRoute) -> Reads {
        let finished = items.is_empty();
        Reads {
            batch_id,
            items,
            route,
            sent: 0,
            answers: Vec::new(),
            failed: None,
            finished,
        }
    }

    /// The route the reads took (`OneByOne` once a Batch API call was refused).
    pub fn route(&self) -> ReadRoute {
        self.route
    }

    /// The next call, or `None` once every read is answered or one failed.
    pub fn next_request(&self, instance: &InstanceUrl, auth: &ApiAuth) -> Option<HttpRequest> {
        if self.finished {
            return None;
        }
        match self.route {
            ReadRoute::Batch => Some(request(instance, auth, self.batch_id, &self.items)),
            ReadRoute::OneByOne => {
                let (_, path) = self.items.get(self.sent)?;
                Some(table::get(instance, path, auth))
            }
        }
    }

    /// The answer to the last `next_request`.
    pub fn handle(&mut self, resp: HttpResponse) {
        if self.finished {
            return;
        }
        match self.route {
            ReadRoute::Batch => {
                if !is_html(&resp) && matches!(resp.status, 400 | 404 | 405) {
                    self.route = ReadRoute::OneByOne;
                    return;
                }
                match parse(&resp) {
                    Some(items) => self.answers = items,
                    None => self.failed = Some(resp),
                }
                self.finished = true;
            }
            ReadRoute::OneByOne => {
                // A refused token, a rate limit, an outage or a web page
                // holds for the reads after it too: stop there, as a batch
                // leaves unserved what its time ran out on.
                let stop = is_html(&resp) || matches!(resp.status, 401 | 429) || resp.status >= 500;
                if let Some((id, _)) = self.items.get(self.sent) {
                    self.answers.push((id.clone(), resp));
                }
                self.sent += 1;
                self.finished = stop || self.sent >= self.items.len();
            }
        }
    }

    /// Every read answered, or the whole call failed.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The answers so far, each as its own call would have answered; reads
    /// not (yet) served are absent. `Err` is a whole batch call's failing
    /// answer, for the caller to explain.
    pub fn answers(self) -> Result<Vec<(String, HttpResponse)>, HttpResponse> {
        match self.failed {
            Some(resp) => Err(resp),
            None => Ok(self.answers),
        }
    }
}

/// The answers of a set of reads (`Reads::answers`), or the problem that
/// ended it: the whole call's failure, or a refused token, a rate limit, an
/// outage or a web page on any read (it holds for the others). A read the
/// caller handles itself (`handled_by_caller`: a page the instance
/// cancelled, asked again smaller) is left in the answers. `what` names the
/// reads in the problem's message.
pub fn served(
    answered: Result<Vec<(String, HttpResponse)>, HttpResponse>,
    what: &str,
    now: i64,
    handled_by_caller: impl Fn(&HttpResponse) -> bool,
) -> Result<Vec<(String, HttpResponse)>, Problem> {
    let items = match answered {
        Ok(items) => items,
        Err(resp) if resp.status != 200 || is_html(&resp) => {
            return Err(classify_failure(&resp, what, now))
        }
        Err(_) => {
            return Err(Problem::with_context(
                ProblemCode::NotServicenow,
                "The Batch API answer could not be read.",
            ))
        }
    };
    let failed = items.iter().map(|(_, r)| r).find(|r| {
        !handled_by_caller(r)
            && (r.status == 401 || r.status == 429 || r.status >= 500 || is_html(r))
    });
    match failed {
        Some(r) => Err(classify_failure(r, what, now)),
        None => Ok(items),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::servicenow::instance_url::{parse as parse_url, HostPolicy};

    #[test]
    fn requests_carry_every_item_and_answers_decode_wrapped_base64() {
        let instance = parse_url("https://acme.service-now.com", &HostPolicy::default()).unwrap();
        let auth = ApiAuth::Bearer(Secret::new("tok"));
        let req = request(
            &instance,
            &auth,
            "pull",
            &[
                ("a".into(), "/api/now/v2/table/sysevent?x=1".into()),
                ("b".into(), "/api/now/v2/table/sys_user?x=2".into()),
            ],
        );
        assert_eq!(req.url, "https://acme.service-now.com/api/now/v1/batch");
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            body["rest_requests"][1]["url"],
            "/api/now/v2/table/sys_user?x=2"
        );
        assert_eq!(body["rest_requests"][0]["id"], "a");

        let answer = serde_json::json!({"serviced_requests": [
            {"id": "a", "status_code": 200, "body": "eyJyZXN1bHQi\nOltdfQ==", "headers": [{"name": "X-Total-Count", "value": "0"}]},
            {"id": "b", "status_code": 429, "body": ""},
        ]});
        let resp = HttpResponse {
            status: 200,
            headers: vec![],
            body: answer.to_string().into_bytes(),
        };
        let items = parse(&resp).unwrap();
        assert_eq!(items[0].1.body, br#"{"result":[]}"#);
        assert_eq!(items[0].1.headers[0].0, "X-Total-Count");
        assert_eq!(items[1].1.status, 429);
        // Not a batch answer: the caller falls back to one call per table.
        let refused = HttpResponse {
            status: 400,
            headers: vec![],
            body: b"{}".to_vec(),
        };
        assert!(parse(&refused).is_none());
        let garbage = HttpResponse {
            status: 200,
            headers: vec![],
            body: b"<html>".to_vec(),
        };
        assert!(parse(&garbage).is_none());
    }

    fn answer(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    fn items() -> Vec<BatchItem> {
        vec![
            ("a".into(), "/api/now/v2/table/sys_user?x=1".into()),
            ("b".into(), "/api/now/v2/table/sys_user_role?x=2".into()),
            ("c".into(), "/api/now/v2/table/ip_access?x=3".into()),
        ]
    }

    fn setup() -> (InstanceUrl, ApiAuth) {
        let instance = parse_url("https://acme.service-now.com", &HostPolicy::default()).unwrap();
        (instance, ApiAuth::Bearer(Secret::new("tok")))
    }

    #[test]
    fn reads_without_a_batch_api_go_one_by_one_with_the_same_answers() {
        let (instance, auth) = setup();
        // Known at the start (the connect warned): three calls, no batch.
        let mut reads = Reads::new("posture", items(), ReadRoute::OneByOne);
        let mut urls = Vec::new();
        while let Some(req) = reads.next_request(&instance, &auth) {
            urls.push(req.url.clone());
            let n = urls.len();
            reads.handle(answer(200, &format!(r#"{{"result":[{{"n":{n}}}]}}"#)));
        }
        assert_eq!(urls.len(), 3);
        assert!(urls[1].ends_with("/api/now/v2/table/sys_user_role?x=2"));
        let got = reads.answers().unwrap();
        let ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(got[2].1.body, br#"{"result":[{"n":3}]}"#);

        // Learned: the Batch API answers 400, the same reads follow one by one.
        let mut reads = Reads::new("posture", items(), ReadRoute::Batch);
        let first = reads.next_request(&instance, &auth).unwrap();
        assert!(first.url.ends_with("/api/now/v1/batch"));
        reads.handle(answer(
            400,
            r#"{"error":{"message":"Requested URI does not represent any resource"}}"#,
        ));
        assert_eq!(reads.route(), ReadRoute::OneByOne);
        let mut calls = 0;
        while let Some(req) = reads.next_request(&instance, &auth) {
            assert!(req.url.contains("/api/now/v2/table/"));
            calls += 1;
            reads.handle(answer(200, r#"{"result":[]}"#));
        }
        assert_eq!(calls, 3);
        assert_eq!(reads.answers().unwrap().len(), 3);
    }

    #[test]
    fn a_rate_limit_one_by_one_stops_the_reads_after_it() {
        let (instance, auth) = setup();
        let mut reads = Reads::new("inventory", items(), ReadRoute::OneByOne);
        reads.handle(answer(200, r#"{"result":[]}"#));
        reads.handle(answer(429, r#"{"error":{"message":"Too many"}}"#));
        assert!(reads.finished());
        assert!(reads.next_request(&instance, &auth).is_none());
        let got = reads.answers().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].1.status, 429);
        // A 403 on one table is that table's answer only.
        let mut reads = Reads::new("inventory", items(), ReadRoute::OneByOne);
        reads.handle(answer(403, "{}"));
        assert!(!reads.finished());
    }

    #[test]
    fn a_failed_batch_call_is_the_callers_to_explain() {
        let (instance, auth) = setup();
        let mut reads = Reads::new("posture", items(), ReadRoute::Batch);
        reads.handle(answer(
            401,
            r#"{"error":{"message":"User Not Authenticated"}}"#,
        ));
        assert!(reads.next_request(&instance, &auth).is_none());
        assert_eq!(reads.answers().unwrap_err().status, 401);
        // An empty set needs no call.
        let reads = Reads::new("posture", Vec::new(), ReadRoute::Batch);
        assert!(reads.next_request(&instance, &auth).is_none());
    }
}
