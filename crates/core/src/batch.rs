//! The Batch API (`POST /api/now/v1/batch`): several Table API reads in one
//! round trip. The preflight uses it for its checks; pulls use it to read the
//! next page of every table at once, which is what a caught-up connection
//! needs each schedule (one call instead of six).

use base64::Engine;
use serde::Deserialize;

use crate::http::{HttpRequest, HttpResponse, Method};
use crate::instance_url::InstanceUrl;
use crate::table::ApiAuth;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance_url::{parse as parse_url, HostPolicy};
    use crate::secret::Secret;

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
}
