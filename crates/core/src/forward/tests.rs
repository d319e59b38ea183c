use super::*;
use crate::http::HttpResponse;
use crate::secret::Secret;
use crate::servicenow::instance_url::Loopback;
use serde_json::{json, Value};

fn req(v: Value) -> SinkRequest {
    serde_json::from_value(v).unwrap()
}

fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    HttpResponse {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

#[test]
fn readers_see_a_receivers_scheme_and_host_never_its_path_or_query() {
    let slack = "https://hooks.slack.com/services/T000/B000/SECRETPATHTOKEN";
    assert_eq!(
        SinkUrl::shown_to_readers(slack),
        "https://hooks.slack.com/…"
    );
    let query = "https://in.example.com:8443?token=abc";
    assert_eq!(
        SinkUrl::shown_to_readers(query),
        "https://in.example.com:8443/…"
    );
    assert_eq!(
        SinkUrl::shown_to_readers("https://in.example.com"),
        "https://in.example.com"
    );
    assert!(!SinkUrl::shown_to_readers(slack).contains("SECRET"));
}

#[test]
fn sink_urls_are_https_host_names_only() {
    for ok in [
        "https://hooks.example.com/in",
        "https://splunk.example.com:8088/services/collector/event",
        "HTTPS://Es.Example.com/",
    ] {
        assert!(SinkUrl::parse(ok, Loopback::Refused).is_ok(), "{ok}");
    }
    assert_eq!(
        SinkUrl::parse("https://Es.Example.com/", Loopback::Refused)
            .unwrap()
            .as_str(),
        "https://Es.Example.com"
    );
    for bad in [
        "http://hooks.example.com/in",
        "https://127.0.0.1/x",
        "https://10.0.0.8/x",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/x",
        "https://[fd00::1]/x",
        "https://2130706433/x",
        "https://0x7f.1/x",
        "https://localhost/x",
        "https://metadata.google.internal/x",
        "https://printer.local/x",
        "https://intranet/x",
        "https://user:pw@hooks.example.com/x",
        "https://hooks.example.com./x",
        "ftp://hooks.example.com",
        "hooks.example.com",
        "https://hooks.example.com:0/x",
        "https://hooks.example.com/x#frag",
        "",
    ] {
        assert!(SinkUrl::parse(bad, Loopback::Refused).is_err(), "{bad}");
    }
    assert!(SinkUrl::parse("http://127.0.0.1:9000/hook", Loopback::Allowed).is_ok());
    assert!(SinkUrl::parse("http://10.0.0.1:9000/hook", Loopback::Allowed).is_err());
}

#[test]
fn sinks_validate_by_kind_and_every_problem_is_named() {
    let (s, secret) = validate(
        &req(json!({"name":"SOC","kind":"elastic","url":"https://es.example.com","api_key":"k","index":"logs-servicenow-default","format":"ecs"})),
        None, Loopback::Refused,
    )
    .unwrap();
    assert_eq!(
        s.params,
        SinkParams::Elastic {
            index: "logs-servicenow-default".into()
        }
    );
    assert_eq!(s.streams, vec![Stream::Events, Stream::Alerts]);
    assert_eq!(s.connection_ids, None);
    assert_eq!(secret.unwrap().expose(), "k");
    let errors = validate(
        &req(json!({"kind":"sentinel","url":"http://x","connection_ids":["nope"],"format":"xml"})),
        None,
        Loopback::Refused,
    )
    .unwrap_err();
    let mut fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "client_id",
            "client_secret",
            "connection_ids",
            "dcr_immutable_id",
            "format",
            "name",
            "stream_name",
            "tenant_id",
            "url"
        ]
    );
    assert_eq!(
        errors.iter().find(|e| e.field == "url").unwrap().code,
        "sink_url_forbidden"
    );
    // A PATCH keeps what it does not send, and may not change the kind.
    let (patched, none) =
        validate(&req(json!({"name":"SOC 2"})), Some(&s), Loopback::Refused).unwrap();
    assert_eq!(patched.params, s.params);
    assert_eq!(patched.name, "SOC 2");
    assert!(none.is_none());
    assert!(validate(&req(json!({"kind":"webhook"})), Some(&s), Loopback::Refused).is_err());
    let (all, _) = validate(
        &req(json!({"connection_ids": null})),
        Some(&s),
        Loopback::Refused,
    )
    .unwrap();
    assert_eq!(all.connection_ids, None);
}

fn items() -> Vec<Item> {
    vec![
        Item {
            id: "sysevent:a".into(),
            occurred_at: 1_700_000_000,
            source: "sysevent".into(),
            record: json!({"id":"sysevent:a"}),
            scope: None,
        },
        Item {
            id: "sysevent:b".into(),
            occurred_at: 1_700_000_001,
            source: "sysevent".into(),
            record: json!({"id":"sysevent:b"}),
            scope: None,
        },
    ]
}

#[test]
fn webhooks_are_signed_per_secret_as_standard_webhooks_says() {
    // The Standard Webhooks reference vector.
    let sig = webhook_signature(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        br#"{"test": 2432232314}"#,
    );
    assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    let url = SinkUrl::parse("https://hooks.example.com/in", Loopback::Refused).unwrap();
    let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_c2Vjb25k");
    let t = Target {
        url: &url,
        params: &SinkParams::Webhook,
        secret: &secret,
        host: "acme.service-now.com",
    };
    let r = delivery(&t, Stream::Events, &items(), 1_700_000_100, None);
    let h = |n: &str| {
        r.headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(h("webhook-timestamp"), "1700000100");
    assert_eq!(
        h("webhook-signature").split(' ').count(),
        2,
        "one v1 signature per secret"
    );
    assert_eq!(
        h("webhook-id"),
        message_id(Stream::Events, &items()),
        "a retried batch keeps its id"
    );
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["type"], "events");
    assert_eq!(body["data"][1]["id"], "sysevent:b");
}

#[test]
fn hec_elastic_and_sentinel_wire_formats() {
    let url = SinkUrl::parse(
        "https://splunk.example.com:8088/services/collector/event",
        Loopback::Refused,
    )
    .unwrap();
    let token = Secret::new("hec-token");
    let t = Target {
        url: &url,
        params: &SinkParams::SplunkHec,
        secret: &token,
        host: "acme.service-now.com",
    };
    let r = delivery(&t, Stream::Events, &items(), 0, None);
    assert!(r
        .headers
        .contains(&("authorization".into(), "Splunk hec-token".into())));
    let lines: Vec<Value> = String::from_utf8(r.body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["fields"]["event_id"], "sysevent:a");
    assert_eq!(lines[0]["time"], 1_700_000_000);
    assert_eq!(lines[0]["host"], "acme.service-now.com");
    assert_eq!(lines[0]["sourcetype"], "servicenow:event");

    let url = SinkUrl::parse("https://es.example.com/", Loopback::Refused).unwrap();
    let params = SinkParams::Elastic {
        index: "logs-sn-default".into(),
    };
    let key = Secret::new("api-key");
    let t = Target {
        url: &url,
        params: &params,
        secret: &key,
        host: "h",
    };
    // Two connections to identical instances hold the same event ids: the
    // document's `_id` names the connection too, or one's would be refused
    // as the other's repeat.
    let mut scoped = items();
    scoped[0].scope = Some("c0ffee".into());
    let r = delivery(&t, Stream::Events, &scoped, 0, None);
    assert_eq!(r.url, "https://es.example.com/_bulk");
    let lines: Vec<Value> = String::from_utf8(r.body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0],
        json!({"create": {"_index": "logs-sn-default", "_id": "c0ffee:sysevent:a"}})
    );
    assert_eq!(lines[2]["create"]["_id"], "sysevent:b");
    assert_eq!(lines[1]["@timestamp"], "2023-11-14T22:13:20Z");

    let params = SinkParams::Sentinel {
        tenant_id: "t".into(),
        client_id: "c".into(),
        dcr_immutable_id: "dcr-1".into(),
        stream_name: "Custom-ServiceNow_CL".into(),
        token_url: None,
    };
    let secret = Secret::new("s3cret");
    let tok = sentinel_token_request(&params, &secret).unwrap();
    assert_eq!(
        tok.url,
        "https://login.microsoftonline.com/t/oauth2/v2.0/token"
    );
    assert!(String::from_utf8(tok.body)
        .unwrap()
        .contains("scope=https%3A%2F%2Fmonitor.azure.com%2F%2F.default"));
    let url = SinkUrl::parse("https://dce.ingest.monitor.azure.com", Loopback::Refused).unwrap();
    let t = Target {
        url: &url,
        params: &params,
        secret: &secret,
        host: "h",
    };
    let r = delivery(&t, Stream::Alerts, &items(), 0, Some("tok"));
    assert_eq!(r.url, "https://dce.ingest.monitor.azure.com/dataCollectionRules/dcr-1/streams/Custom-ServiceNow_CL?api-version=2023-01-01");
    assert!(r
        .headers
        .contains(&("authorization".into(), "Bearer tok".into())));
    let rows: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(rows[0]["EventId"], "sysevent:a");
}

#[test]
fn answers_mean_what_receivers_mean() {
    assert_eq!(
        verdict(SinkKind::Webhook, &resp(204, &[], "")),
        Verdict::Accepted { repeats: 0 }
    );
    assert_eq!(
        verdict(SinkKind::Webhook, &resp(410, &[], "")),
        Verdict::Gone
    );
    assert!(matches!(
        verdict(SinkKind::SplunkHec, &resp(410, &[], "")),
        Verdict::Refused { status: 410, .. }
    ));
    assert_eq!(
        verdict(
            SinkKind::SplunkHec,
            &resp(429, &[("Retry-After", "120")], "slow down")
        ),
        Verdict::Retry {
            after_secs: Some(120),
            status: 429,
            message: "slow down".into()
        }
    );
    assert!(matches!(
        verdict(SinkKind::Sentinel, &resp(503, &[], "")),
        Verdict::Retry {
            after_secs: None,
            ..
        }
    ));
    assert!(matches!(
        verdict(SinkKind::Sentinel, &resp(401, &[], "bad token")),
        Verdict::Refused { status: 401, .. }
    ));
    let bulk = |items: Value| {
        resp(
            200,
            &[],
            &json!({"errors": true, "items": items}).to_string(),
        )
    };
    assert_eq!(
        verdict(
            SinkKind::Elastic,
            &bulk(json!([{"create":{"status":201}},{"create":{"status":409}}]))
        ),
        Verdict::Accepted { repeats: 1 }
    );
    assert!(matches!(
        verdict(
            SinkKind::Elastic,
            &bulk(json!([{"create":{"status":201}},{"create":{"status":429}}]))
        ),
        Verdict::Retry { .. }
    ));
    // A document refused while others were taken is named, with Elastic's
    // type and reason, so the admin can mend the mapping; the rest went.
    assert_eq!(
        verdict(
            SinkKind::Elastic,
            &bulk(json!([
                {"create":{"_id":"sysevent:a","status":201}},
                {"create":{"_id":"sysevent:b","status":400,"error":{"type":"document_parsing_exception","reason":"failed to parse field [source.ip] of type [ip]"}}}
            ]))
        ),
        Verdict::Partial {
            repeats: 0,
            refused: vec![(1, 400, "document sysevent:b: document_parsing_exception: failed to parse field [source.ip] of type [ip]".into())]
        }
    );
    // Every document refused: the receiver's mapping, not one document.
    assert_eq!(
        verdict(
            SinkKind::Elastic,
            &bulk(json!([
                {"create":{"_id":"sysevent:b","status":400,"error":{"type":"document_parsing_exception","reason":"bad"}}}
            ]))
        ),
        Verdict::Refused {
            status: 400,
            message:
                "1 of 1 documents refused; document sysevent:b: document_parsing_exception: bad"
                    .into()
        }
    );
    // One that may heal wins over one refused: the batch is retried.
    assert!(matches!(
        verdict(
            SinkKind::Elastic,
            &bulk(json!([
                {"create":{"_id":"sysevent:b","status":400,"error":{"reason":"mapper_parsing_exception"}}},
                {"create":{"_id":"sysevent:c","status":503}}
            ]))
        ),
        Verdict::Retry { status: 503, .. }
    ));
}

#[test]
fn a_bulk_answer_that_does_not_name_every_document_sent_is_tried_again() {
    let answer = |items: Value| HttpResponse {
        status: 200,
        headers: Vec::new(),
        body: json!({"errors": false, "items": items})
            .to_string()
            .into_bytes(),
    };
    let two = answer(json!([{"create":{"status":201}},{"create":{"status":201}}]));
    assert_eq!(
        call_verdict(SinkKind::Elastic, &two, 2),
        Verdict::Accepted { repeats: 0 }
    );
    assert!(matches!(
        call_verdict(SinkKind::Elastic, &two, 3),
        Verdict::Retry { status: 200, .. }
    ));
    // A document refused for a reason not its own (the key's rights) is
    // the sink's failure, not a dead letter.
    let forbidden = answer(
        json!([{"create":{"status":201}},{"create":{"status":403,"error":{"type":"security_exception"}}}]),
    );
    assert!(matches!(
        call_verdict(SinkKind::Elastic, &forbidden, 2),
        Verdict::Refused { status: 403, .. }
    ));
}

#[test]
fn retries_back_off_with_jitter_and_honour_retry_after() {
    let cap = MAX_RETRY_SECS;
    assert_eq!(retry_delay(1, None, 1.0, cap), 30);
    assert_eq!(retry_delay(1, None, 0.0, cap), 15);
    assert_eq!(retry_delay(3, None, 1.0, cap), 120);
    assert_eq!(retry_delay(30, None, 1.0, cap), 3600);
    assert_eq!(retry_delay(5, Some(120), 0.3, cap), 120);
    assert_eq!(retry_delay(1, Some(0), 0.3, cap), 1);
    assert_eq!(retry_delay(9, None, 1.0, 2), 2);
}

#[test]
fn batches_fit_the_receiver() {
    let big: Vec<Item> = (0..3000)
        .map(|n| Item {
            id: format!("t:{n}"),
            occurred_at: 0,
            source: "t".into(),
            record: json!({"pad": "x".repeat(900)}),
            scope: None,
        })
        .collect();
    assert!(batch_len(SinkKind::Sentinel, &big) < 1000);
    assert_eq!(batch_len(SinkKind::Webhook, &big[..10]), 10);
    assert_eq!(batch_len(SinkKind::Elastic, &big), 1000);
}

#[test]
fn a_sink_fails_after_a_day_at_once_when_refused_and_a_410_disables_it() {
    let retry = || Verdict::Retry {
        after_secs: None,
        status: 503,
        message: "busy".into(),
    };
    let f = after_failure(retry(), 3, 1_000, 1_000 + 3600, 1.0, MAX_RETRY_SECS);
    assert_eq!(
        (f.next_at, f.state, f.status),
        (1_000 + 3600 + 120, None, 503)
    );
    let f = after_failure(
        retry(),
        40,
        1_000,
        1_000 + FAILING_AFTER_SECS,
        1.0,
        MAX_RETRY_SECS,
    );
    assert_eq!(f.state, Some(SinkState::Failing));
    assert_eq!(
        f.next_at,
        1_000 + FAILING_AFTER_SECS + 3600,
        "still tried, hourly"
    );
    let f = after_failure(
        Verdict::Refused {
            status: 401,
            message: "bad token".into(),
        },
        1,
        5,
        5,
        0.5,
        MAX_RETRY_SECS,
    );
    assert_eq!(
        (f.state, f.next_at, f.message.as_str()),
        (
            Some(SinkState::Failing),
            5 + REFUSED_RETRY_SECS,
            "bad token"
        )
    );
    let f = after_failure(Verdict::Gone, 1, 5, 5, 0.5, MAX_RETRY_SECS);
    assert_eq!((f.state, f.status), (Some(SinkState::Disabled), 410));
    let f = after_failure(
        Verdict::Retry {
            after_secs: Some(120),
            status: 429,
            message: String::new(),
        },
        1,
        5,
        5,
        0.5,
        MAX_RETRY_SECS,
    );
    assert_eq!(f.next_at, 125, "Retry-After wins");
}

#[test]
fn a_stored_credential_is_never_sent_to_a_new_address() {
    let (s, _) = validate(&req(json!({"name":"S","kind":"splunk_hec","url":"https://hec.example.com/services/collector/event","token":"t"})), None, Loopback::Refused).unwrap();
    let errors = validate(
        &req(json!({"url":"https://evil.example.com/x"})),
        Some(&s),
        Loopback::Refused,
    )
    .unwrap_err();
    assert_eq!(errors[0].field, "token");
    let (moved, token) = validate(
        &req(json!({"url":"https://hec2.example.com/x","token":"t2"})),
        Some(&s),
        Loopback::Refused,
    )
    .unwrap();
    assert_eq!(
        (moved.url.as_str(), token.unwrap().expose()),
        ("https://hec2.example.com/x", "t2")
    );
    assert!(
        validate(&req(json!({"name":"renamed"})), Some(&s), Loopback::Refused).is_ok(),
        "a rename keeps it"
    );
    let (sen, _) = validate(&req(json!({"name":"S","kind":"sentinel","url":"https://dce.example.com","tenant_id":"t","client_id":"c","client_secret":"x","dcr_immutable_id":"dcr-1","stream_name":"Custom-S_CL"})), None, Loopback::Refused).unwrap();
    assert_eq!(
        validate(
            &req(json!({"token_url":"https://evil.example.com/token"})),
            Some(&sen),
            Loopback::Refused
        )
        .unwrap_err()[0]
            .field,
        "client_secret"
    );
    let bad = validate(&req(json!({"name":"S","kind":"sentinel","url":"https://dce.example.com?x=1","tenant_id":"t","client_id":"c","client_secret":"x","dcr_immutable_id":"../x","stream_name":"a/b"})), None, Loopback::Refused).unwrap_err();
    let mut fields: Vec<_> = bad.iter().map(|e| e.field.as_str()).collect();
    fields.sort();
    assert_eq!(fields, ["dcr_immutable_id", "stream_name", "url"]);
}

#[test]
fn grown_alerts_are_new_messages_and_replace_in_elastic() {
    let mut a = items();
    let first = message_id(Stream::Alerts, &a);
    a[0].record = json!({"id":"sysevent:a","count":13});
    assert_ne!(message_id(Stream::Alerts, &a), first);
    let url = SinkUrl::parse("https://es.example.com", Loopback::Refused).unwrap();
    let params = SinkParams::Elastic {
        index: "logs-sn-default".into(),
    };
    let key = Secret::new("k");
    let t = Target {
        url: &url,
        params: &params,
        secret: &key,
        host: "h",
    };
    let body = String::from_utf8(delivery(&t, Stream::Alerts, &a, 0, None).body).unwrap();
    assert!(body.starts_with(r#"{"index":"#), "{body}");
    let bulk = |items: Value| {
        resp(
            200,
            &[],
            &json!({"errors": true, "items": items}).to_string(),
        )
    };
    assert!(
        matches!(
            verdict(
                SinkKind::Elastic,
                &bulk(json!([{"create":{"status":400}},{"create":{"status":503}}]))
            ),
            Verdict::Retry { .. }
        ),
        "whatever the order, a batch that may heal is retried"
    );
}

#[test]
fn a_record_stored_without_oversize_fields_says_so_in_every_format() {
    let raw = serde_json::value::to_raw_value(&json!({
        "sys_id": "a1", "sys_created_on": "2026-01-01 00:00:00", "remote_ip": "10.0.0.1"
    }))
    .unwrap();
    let mut e = crate::pull::events::normalize("c1", "syslog_transaction", &raw).unwrap();
    assert!(ecs_event(&e)["servicenow"]
        .get("truncated_fields")
        .is_none());
    assert!(crate::pull::events::ocsf(&e)["unmapped"]
        .get("truncated_fields")
        .is_none());
    e.truncated_fields = vec!["url".into()];
    assert_eq!(
        ecs_event(&e)["servicenow"]["truncated_fields"],
        json!(["url"])
    );
    assert_eq!(
        crate::pull::events::ocsf(&e)["unmapped"]["truncated_fields"],
        json!(["url"])
    );
    assert_eq!(
        serde_json::to_value(&e).unwrap()["truncated_fields"],
        json!(["url"])
    );
}

#[test]
fn a_sink_serves_the_connections_it_names_or_all() {
    let (all, _) = validate(
        &req(json!({"name":"S","kind":"webhook","url":"https://hooks.example.com/in","streams":["events"]})),
        None,
        Loopback::Refused,
    )
    .unwrap();
    assert!(all.serves("a") && all.serves("b"));
    let named = SinkSettings {
        connection_ids: Some(vec!["a".into()]),
        ..all
    };
    assert!(named.serves("a"));
    assert!(!named.serves("b"));
}
