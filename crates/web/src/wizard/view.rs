//! What each wizard step looks like: the page's words for core's steps and
//! fields, drawn with web-sys.

use snc_core::api::connection::Connection;
use snc_core::connect::input::AuthMethod;
use snc_core::connect::wizard::StepView;

use crate::dom::el;
use web_sys::Element;

/// How the page shows one field.
struct FieldText {
    label: &'static str,
    password: bool,
    hint: &'static str,
    autocomplete: &'static str,
    inputmode: Option<&'static str>,
}

fn field_text(name: &str) -> FieldText {
    let text = |label, hint| FieldText {
        label,
        password: false,
        hint,
        autocomplete: "off",
        inputmode: None,
    };
    match name {
        "name" => text("Connection name", "A name you will recognise, such as \"ServiceNow production\"."),
        "username" => FieldText {
            autocomplete: "username",
            ..text("User ID", "The user_name of an account with the admin role (ServiceNow: User Administration > Users).")
        },
        "password" => FieldText {
            password: true,
            autocomplete: "current-password",
            ..text("Password", "Used once to get tokens with OAuth, and never stored; kept encrypted for legacy connections.")
        },
        "instance_url" => FieldText {
            inputmode: Some("url"),
            ..text("Instance URL", "Such as https://acme.service-now.com, or just acme.")
        },
        "client_id" => text("Client ID", "System OAuth > Application Registry > your \"OAuth API endpoint for external clients\": the generated Client ID."),
        "client_secret" => FieldText {
            password: true,
            ..text("Client secret", "The Client Secret of the same record. Set its Access Token Lifespan to at least 3,600 s.")
        },
        _ => text("", ""),
    }
}

/// A field with its label, hint and (hidden) error line; returns the block
/// and its input.
pub fn field(name: &str, value: &str) -> (Element, Element, Element) {
    let f = field_text(name);
    let id = format!("snc-{name}");
    let hint_id = format!("{id}-hint");
    let input = el(
        "input",
        &[
            ("id", Some(&id)),
            ("name", Some(name)),
            ("type", Some(if f.password { "password" } else { "text" })),
            ("autocomplete", Some(f.autocomplete)),
            ("inputmode", f.inputmode),
            ("spellcheck", Some("false")),
            ("aria-describedby", Some(&hint_id)),
            ("required", Some("")),
        ],
        None,
    );
    if let Some(i) = wasm_bindgen::JsCast::dyn_ref::<web_sys::HtmlInputElement>(&input) {
        i.set_value(value);
    }
    let error = el(
        "p",
        &[
            ("id", Some(&format!("{id}-error"))),
            ("class", Some("snc-error")),
            ("hidden", Some("")),
        ],
        None,
    );
    let block = el("div", &[("class", Some("snc-field"))], None);
    crate::dom::append(
        &block,
        &[
            el("label", &[("for", Some(&id))], Some(f.label)),
            input.clone(),
            el(
                "p",
                &[("id", Some(&hint_id)), ("class", Some("snc-hint"))],
                Some(f.hint),
            ),
            error.clone(),
        ],
    );
    (block, input, error)
}

/// The method step: one radio per method, the chosen one checked.
pub fn methods(chosen: AuthMethod) -> Element {
    let set = el("fieldset", &[], None);
    crate::dom::append(
        &set,
        &[el(
            "legend",
            &[],
            Some("Choose how the connector signs in to ServiceNow"),
        )],
    );
    for m in AuthMethod::ALL {
        let (label, hint) = match m {
            AuthMethod::Oauth => ("Connect using OAuth token (recommended)", "Fuji and later. Your password is used once to get tokens and is not kept."),
            AuthMethod::ClientCredentials => ("Connect using OAuth client credentials", "For instances that switch the password grant off. In ServiceNow: allow the client-credentials grant (system property glide.oauth.inbound.client.credential.grant_type.enabled = true), then in the OAuth application's record set the OAuth Application User to an integration account that holds the admin role and is web-service-only. Only the client ID and secret are needed here."),
            AuthMethod::Basic => ("Connect using user name and password only (legacy)", "For older releases: a dedicated service account with the admin role; the password is kept, encrypted, because every call needs it. The REST API plugin must be on."),
        };
        let id = format!("snc-method-{}", m.as_str());
        let hint_id = format!("{id}-hint");
        let option = el("div", &[("class", Some("snc-option"))], None);
        crate::dom::append(
            &option,
            &[
                el(
                    "input",
                    &[
                        ("type", Some("radio")),
                        ("name", Some("method")),
                        ("id", Some(&id)),
                        ("value", Some(m.as_str())),
                        ("checked", (m == chosen).then_some("")),
                        ("aria-describedby", Some(&hint_id)),
                    ],
                    None,
                ),
                el("label", &[("for", Some(&id))], Some(label)),
                el(
                    "p",
                    &[("id", Some(&hint_id)), ("class", Some("snc-hint"))],
                    Some(hint),
                ),
            ],
        );
        crate::dom::append(&set, &[option]);
    }
    set
}

/// The connect step: what will happen, and what was entered.
pub fn summary(view: &StepView, backfill_days: i64) -> Vec<Element> {
    let list = el("dl", &[("class", Some("snc-summary"))], None);
    for (k, v) in &view.summary {
        crate::dom::append(&list, &[el("dt", &[], Some(k)), el("dd", &[], Some(v))]);
    }
    vec![
        el("p", &[], Some(&format!("The connector signs in, checks the admin role, the release and access to the tables it reads, then starts collecting the last {backfill_days} days of events."))),
        list,
    ]
}

/// The status step: the connection as the API last answered, and the
/// backfill's progress.
pub fn status(c: &Connection, line: &str) -> Element {
    let wrap = el("div", &[("class", Some("snc-status"))], None);
    let status = c.status.as_str();
    let head = el("p", &[], None);
    crate::dom::append(
        &head,
        &[
            el("strong", &[], Some("Status: ")),
            el(
                "span",
                &[
                    ("class", Some(&format!("snc-badge {status}"))),
                    ("data-status", Some(status)),
                ],
                Some(if status == "connected" {
                    "Connected"
                } else {
                    status
                }),
            ),
        ],
    );
    let release = c.release.as_deref().unwrap_or("release unknown");
    crate::dom::append(
        &wrap,
        &[
            head,
            el(
                "p",
                &[],
                Some(&format!("{} — {} ({release})", c.name, c.instance_url)),
            ),
        ],
    );
    for w in &c.warnings {
        crate::dom::append(
            &wrap,
            &[el("p", &[("class", Some("snc-warning"))], Some(&w.message))],
        );
    }
    let b = &c.backfill;
    let total = b.total.max(b.events).max(1).to_string();
    crate::dom::append(
        &wrap,
        &[
            el("p", &[], Some(line)),
            el(
                "progress",
                &[
                    ("max", Some(&total)),
                    ("value", Some(&b.events.to_string())),
                    ("aria-label", Some("Backfill progress")),
                ],
                None,
            ),
            el(
                "p",
                &[("class", Some("snc-count"))],
                Some(&format!("{} events", b.events)),
            ),
        ],
    );
    wrap
}
