use super::*;
use crate::api::connection::{Backfill, Status};
use crate::api::settings::PageSettings;
use crate::problem::ProblemCode;

fn wizard() -> Wizard {
    Wizard::new(HostPolicy::from_config(None, None), 7)
}

fn type_in(w: &mut Wizard, pairs: &[(&str, &str)]) {
    for (f, v) in pairs {
        w.update(Msg::Input {
            field: f.to_string(),
            value: v.to_string(),
        });
    }
}

fn conn(done: bool) -> Box<Connection> {
    Box::new(Connection {
        id: "c1".into(),
        name: "prod".into(),
        instance_url: "https://acme.service-now.com".into(),
        method: "oauth".into(),
        enabled: true,
        status: Status::Connected,
        status_detail: None,
        warnings: Vec::new(),
        release: None,
        build: None,
        created_at: String::new(),
        last_pull_at: None,
        next_pull_at: None,
        backfill: Backfill {
            from: String::new(),
            to: String::new(),
            done,
            events: 10,
            total: 20,
        },
        event_count: 10,
        posture_score: None,
        open_alerts: 0,
        pull_interval_secs: None,
    })
}

/// Walks to the Connect step with valid values for `method`.
fn to_connect(method: AuthMethod) -> Wizard {
    let mut w = wizard();
    type_in(&mut w, &[("name", "prod")]);
    assert_eq!(w.update(Msg::Submit), vec![Effect::Render]);
    w.update(Msg::ChooseMethod(method));
    w.update(Msg::Submit);
    type_in(
        &mut w,
        &[
            ("username", "svc"),
            ("password", "pw-123456"),
            ("instance_url", "acme"),
            ("client_id", "0123456789abcdef0123456789abcdef"),
            ("client_secret", "s3cret-s3cret"),
        ],
    );
    while w.step() != Step::Connect {
        assert_eq!(
            w.update(Msg::Submit),
            vec![Effect::Render],
            "at {:?}",
            w.step()
        );
    }
    w
}

#[test]
fn each_method_has_its_steps_and_fields() {
    assert_eq!(
        steps(AuthMethod::Basic),
        vec![
            Step::Name,
            Step::Method,
            Step::Basic,
            Step::Connect,
            Step::Status
        ]
    );
    assert_eq!(steps(AuthMethod::Oauth).len(), 6);
    assert_eq!(
        Step::Basic.fields(AuthMethod::ClientCredentials),
        &["instance_url"]
    );
    assert_eq!(Step::Basic.title(AuthMethod::ClientCredentials), "Instance");
    assert_eq!(
        Step::Basic.fields(AuthMethod::Oauth),
        &["username", "password", "instance_url"]
    );
    assert_eq!(
        Step::Oauth.fields(AuthMethod::Basic),
        &["client_id", "client_secret"]
    );
}

#[test]
fn a_step_with_bad_fields_stays_and_names_them() {
    let mut w = wizard();
    let effects = w.update(Msg::Submit);
    assert!(matches!(&effects[..], [Effect::FieldErrors(e)] if e[0].field == "name"));
    assert_eq!(w.step(), Step::Name);
    assert_eq!(
        w.update(Msg::Back),
        Vec::new(),
        "nothing before the first step"
    );
}

#[test]
fn the_connect_request_holds_the_methods_fields_only() {
    let mut w = to_connect(AuthMethod::ClientCredentials);
    assert_eq!(
        w.view().summary.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        ["Name", "Method", "Instance", "Client ID"]
    );
    let [Effect::Connect(body)] = &w.update(Msg::Submit)[..] else {
        panic!("no connect")
    };
    assert_eq!(body.get("method"), Some("client_credentials"));
    assert!(body.get("password").is_none() && body.get("username").is_none());
    assert_eq!(body.get("client_secret"), Some("s3cret-s3cret"));
    assert!(
        !format!("{body:?}").contains("s3cret"),
        "the secret is not in Debug"
    );
    let mut w = to_connect(AuthMethod::Basic);
    let [Effect::Connect(body)] = &w.update(Msg::Submit)[..] else {
        panic!("no connect")
    };
    assert!(body.get("client_id").is_none());
    assert_eq!(body.get("password"), Some("pw-123456"));
}

#[test]
fn problems_send_the_admin_to_the_step_that_holds_the_cause() {
    let cases = [
        (AuthMethod::Oauth, "credentials_rejected", Step::Basic),
        (
            AuthMethod::ClientCredentials,
            "credentials_rejected",
            Step::Oauth,
        ),
        (AuthMethod::ClientCredentials, "not_admin", Step::Oauth),
        (AuthMethod::Basic, "instance_hibernating", Step::Basic),
        (AuthMethod::Oauth, "not_servicenow", Step::Basic),
        (AuthMethod::Oauth, "rate_limited", Step::Connect),
        (AuthMethod::Oauth, CONNECTOR_UNREACHABLE, Step::Connect),
    ];
    for (method, code, want) in cases {
        let mut w = to_connect(method);
        let mut p = Problem::new(ProblemCode::Internal);
        p.code = code.into();
        let effects = w.update(Msg::ConnectFailed(p.clone()));
        assert_eq!(w.step(), want, "{method:?} {code}");
        assert_eq!(effects.last(), Some(&Effect::Problem(p)));
    }
    // A field error goes to its field's step.
    let mut w = to_connect(AuthMethod::Oauth);
    let p = Problem::validation(vec![FieldError {
        field: "client_id".into(),
        code: "invalid".into(),
        message: "m".into(),
    }]);
    let effects = w.update(Msg::ConnectFailed(p));
    assert_eq!(w.step(), Step::Oauth);
    assert!(matches!(
        &effects[..],
        [Effect::Render, Effect::FieldErrors(_)]
    ));
}

#[test]
fn after_connecting_the_secrets_go_and_the_status_is_followed_through_failures() {
    let mut w = to_connect(AuthMethod::Oauth);
    let effects = w.update(Msg::Connected(conn(false)));
    assert_eq!(
        effects,
        vec![
            Effect::Render,
            Effect::Poll {
                id: "c1".into(),
                after_ms: 1_000
            }
        ]
    );
    assert_eq!(w.value("password"), None);
    assert_eq!(w.value("client_secret"), None);
    assert_eq!(
        w.view().status.as_deref(),
        Some("Collecting the last 7 days of events…")
    );
    let mut down = Problem::new(ProblemCode::Internal);
    down.code = CONNECTOR_UNREACHABLE.into();
    let e1 = w.update(Msg::Polled {
        id: "c1".into(),
        answer: Err(down.clone()),
    });
    assert_eq!(
        e1[1],
        Effect::Poll {
            id: "c1".into(),
            after_ms: 2_000
        }
    );
    assert!(
        matches!(&e1[0], Effect::Announce(t) if t == "The connector could not be reached. Trying again in 2 s.")
    );
    let e2 = w.update(Msg::Polled {
        id: "c1".into(),
        answer: Err(down.clone()),
    });
    assert_eq!(
        e2[1],
        Effect::Poll {
            id: "c1".into(),
            after_ms: 4_000
        }
    );
    for _ in 0..10 {
        w.update(Msg::Polled {
            id: "c1".into(),
            answer: Err(down.clone()),
        });
    }
    assert_eq!(
        w.update(Msg::Polled {
            id: "c1".into(),
            answer: Err(down),
        })[1],
        Effect::Poll {
            id: "c1".into(),
            after_ms: 30_000
        },
        "capped"
    );
    let back = w.update(Msg::Polled {
        id: "c1".into(),
        answer: Ok(conn(true)),
    });
    assert_eq!(
        back,
        vec![
            Effect::Announce("The connector answers again.".into()),
            Effect::Render
        ]
    );
    assert_eq!(w.view().status.as_deref(), Some("The last 7 days are in."));
    assert_eq!(w.view().next, "Connect another");
    assert!(!w.view().back);
    assert_eq!(w.update(Msg::Submit), vec![Effect::Render]);
    assert_eq!(
        (w.step(), w.value("name")),
        (Step::Name, None),
        "a fresh start"
    );
    assert_eq!(
        w.update(Msg::Polled {
            id: "c1".into(),
            answer: Ok(conn(false)),
        }),
        Vec::new(),
        "a late answer changes nothing"
    );
}

#[test]
fn settings_arriving_late_change_the_checks_and_the_days() {
    let mut w = wizard();
    let strict = w.update(Msg::Input {
        field: "instance_url".into(),
        value: "http://127.0.0.1:9000".into(),
    });
    assert!(strict.is_empty());
    assert!(crate::connect::input::check_field(
        "instance_url",
        "http://127.0.0.1:9000",
        w.policy()
    )
    .is_err());
    let settings = PageSettings::new("", crate::servicenow::instance_url::Loopback::Allowed, 14);
    assert_eq!(
        w.update(Msg::Settings(Box::new(settings))),
        Vec::new(),
        "the first step does not move"
    );
    assert!(crate::connect::input::check_field(
        "instance_url",
        "http://127.0.0.1:9000",
        w.policy()
    )
    .is_ok());
    assert_eq!(w.backfill_days(), 14);
    let mut w = to_connect(AuthMethod::Oauth);
    assert_eq!(
        w.update(Msg::Settings(Box::new(PageSettings::new(
            "",
            crate::servicenow::instance_url::Loopback::Refused,
            30
        )))),
        vec![Effect::Render],
        "the connect step names the days: drawn again"
    );
    assert_eq!(w.backfill_days(), 30);
}

#[test]
fn one_connect_at_a_time_and_reads_of_an_earlier_connection_are_ignored() {
    let mut w = to_connect(AuthMethod::Oauth);
    assert!(matches!(&w.update(Msg::Submit)[..], [Effect::Connect(_)]));
    assert!(w.view().busy);
    assert_eq!(
        w.update(Msg::Submit),
        Vec::new(),
        "a second press sends nothing"
    );
    assert_eq!(
        w.update(Msg::Settings(Box::new(PageSettings::new(
            "",
            crate::servicenow::instance_url::Loopback::Allowed,
            30
        )))),
        Vec::new(),
        "late settings do not redraw a connect under way"
    );
    let mut refused = Problem::new(ProblemCode::RateLimited);
    refused.errors.clear();
    w.update(Msg::ConnectFailed(refused));
    assert!(!w.view().busy, "the admin can try again");
    assert!(matches!(&w.update(Msg::Submit)[..], [Effect::Connect(_)]));
    w.update(Msg::Connected(conn(false)));
    // A read of another connection (a chain left from before "Connect
    // another") neither shows nor schedules anything.
    let mut down = Problem::new(ProblemCode::Internal);
    down.code = CONNECTOR_UNREACHABLE.into();
    assert_eq!(
        w.update(Msg::Polled {
            id: "earlier".into(),
            answer: Err(down),
        }),
        Vec::new()
    );
}
