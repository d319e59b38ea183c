//! The overview, first after sign-in: open alerts by severity with the
//! newest of them, and each connection's health, posture score and events a
//! day. It is part of the page's own module (no second download before it
//! shows) and reads answers by hand (`js::Obj`), as the wizard does.

use std::rc::Rc;

use snc_core::api::connection::{Connection, Status};
use snc_core::api::page::{events_per_day, AlertTally};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::Element;

use crate::api::{ApiClient, Credential};
use crate::dom::{append, el, replace};
use crate::js::{promise, FromJs, Obj};

/// How many of the newest open alerts the overview lists.
const NEWEST: usize = 5;
/// One page of open alerts is counted (the API's largest).
const ALERTS_PATH: &str = "/alerts?status=open&limit=1000";

struct Overview {
    client: ApiClient,
    tally: Element,
    newest: Element,
    connections: Element,
}

fn link(href: &str, text: &str) -> Element {
    el("a", &[("href", Some(href))], Some(text))
}

fn row(cells: Vec<Element>) -> Element {
    let tr = el("tr", &[], None);
    for c in cells {
        let td = el("td", &[], None);
        let _ = td.append_child(&c);
        let _ = tr.append_child(&td);
    }
    tr
}

fn text(t: &str) -> Element {
    el("span", &[], Some(t))
}

fn table(class: &str, caption: &str, columns: &[&str]) -> Element {
    let t = el("table", &[("class", Some(class))], None);
    let head = el("tr", &[], None);
    for c in columns {
        let _ = head.append_child(&el("th", &[("scope", Some("col"))], Some(c)));
    }
    let thead = el("thead", &[], None);
    let _ = thead.append_child(&head);
    append(
        &t,
        &[
            el("caption", &[], Some(caption)),
            thead,
            el("tbody", &[], None),
        ],
    );
    t
}

/// Replaces a table's caption and rows.
fn fill(table: &Element, caption: &str, rows: Vec<Element>) {
    let (Ok(Some(cap)), Ok(Some(body))) = (
        table.query_selector("caption"),
        table.query_selector("tbody"),
    ) else {
        return;
    };
    cap.set_text_content(Some(caption));
    replace(&body, &rows);
}

/// Mounts the overview in `root` with `{apiBase, token}`; answers a
/// function the page calls to read it again (each time it is shown).
#[wasm_bindgen(js_name = mountOverview)]
pub fn mount_overview(root: Element, options: JsValue) -> JsValue {
    let o = Obj(&options);
    let view = Rc::new(Overview {
        client: ApiClient::new(&o.text("apiBase"), Credential::from_js(&o.get("token"))),
        tally: el(
            "ul",
            &[
                ("class", Some("tally")),
                ("aria-label", Some("Open alerts by severity")),
            ],
            None,
        ),
        newest: table(
            "events",
            "Newest open alerts",
            &["Severity", "Alert", "Connection", "Last seen"],
        ),
        connections: table(
            "events",
            "Connections",
            &[
                "Connection",
                "Status",
                "Last pull",
                "Posture score",
                "Open alerts",
                "Events a day",
            ],
        ),
    });
    append(
        &root,
        &[
            el(
                "h2",
                &[("id", Some("overview-title")), ("tabindex", Some("-1"))],
                Some("Overview"),
            ),
            el("h3", &[], Some("Open alerts")),
            view.tally.clone(),
            view.newest.clone(),
            el("h3", &[], Some("Connections")),
            view.connections.clone(),
        ],
    );
    let refresh = Closure::<dyn FnMut() -> js_sys::Promise>::new(move || {
        let view = view.clone();
        promise(Box::pin(async move {
            draw(&view).await;
            Ok(JsValue::UNDEFINED)
        }))
    });
    let f: js_sys::Function = refresh.as_ref().unchecked_ref::<js_sys::Function>().clone();
    // The overview lives as long as the page.
    refresh.forget();
    let _ = f.call0(&JsValue::NULL);
    f.into()
}

async fn draw(view: &Overview) {
    // Both asked at once: the connections' names label the alerts.
    let (connections, alerts) = futures_util::future::join(
        view.client
            .call(snc_core::api::routes::ApiMethod::Get, "/connections", None),
        view.client
            .call(snc_core::api::routes::ApiMethod::Get, ALERTS_PATH, None),
    )
    .await;
    let connections: Result<Vec<Connection>, _> = connections.map(|a| {
        Obj(&a.json)
            .list("connections")
            .iter()
            .filter_map(Connection::from_js)
            .collect()
    });
    let listed = connections.as_deref().unwrap_or_default();
    let name_of = |id: &str| {
        listed
            .iter()
            .find(|c| c.id == id)
            .map_or_else(|| id.to_string(), |c| c.name.clone())
    };
    match &alerts {
        Ok(a) => {
            let o = Obj(&a.json);
            let list = o.list("alerts");
            let mut tally = AlertTally::default();
            for a in &list {
                tally.add(&Obj(a).text("severity"));
            }
            tally.more = o.get("next_cursor").as_string().is_some();
            let items: Vec<Element> = tally
                .counts()
                .map(|(severity, n)| {
                    let li = el(
                        "li",
                        &[("class", Some(&format!("sev-{}", severity.as_str())))],
                        None,
                    );
                    let _ =
                        li.append_child(&link("#/alerts", &format!("{n} {}", severity.as_str())));
                    li
                })
                .collect();
            replace(&view.tally, &items);
            let rows = list
                .iter()
                .take(NEWEST)
                .map(|a| {
                    let a = Obj(a);
                    let id = a.text("id");
                    row(vec![
                        text(&a.text("severity")),
                        link(&format!("#/alerts/{id}"), &a.text("title")),
                        text(&name_of(&a.text("connection_id"))),
                        text(&a.text("last_seen")),
                    ])
                })
                .collect();
            // Past one page the counts are the newest page's, and say so.
            let said = match tally.total() {
                0 => "No open alerts.".to_string(),
                n if tally.more => format!(
                    "The newest {NEWEST}; the counts above are of the newest {n} open alerts, and there are more"
                ),
                n if n as usize > NEWEST => format!("The newest {NEWEST} of {n} open alerts"),
                n => format!("{n} open alert{}", if n == 1 { "" } else { "s" }),
            };
            fill(&view.newest, &said, rows);
        }
        Err(p) => {
            replace(&view.tally, &[]);
            fill(
                &view.newest,
                &format!("The alerts could not be read: {}", p.detail),
                Vec::new(),
            );
        }
    }
    let connections = match connections {
        Ok(c) => c,
        Err(p) => {
            let said = format!("The connections could not be read: {}", p.detail);
            fill(&view.connections, &said, Vec::new());
            return;
        }
    };
    let now = js_sys::Date::now();
    let rows: Vec<Element> = connections
        .iter()
        .map(|c| {
            let status = match (&c.status, &c.status_detail) {
                (Status::Connected, _) if !c.backfill.done => "connected, backfilling".to_string(),
                (s, Some(d)) if *s != Status::Connected => format!("{}: {}", s.as_str(), d.message),
                (s, _) => s.as_str().to_string(),
            };
            let from = js_sys::Date::parse(&c.backfill.from);
            row(vec![
                link(&format!("#/connections/{}", c.id), &c.name),
                el(
                    "span",
                    &[("class", Some(&format!("snc-badge {}", c.status.as_str())))],
                    Some(&status),
                ),
                text(c.last_pull_at.as_deref().unwrap_or("not yet")),
                text(
                    &c.posture_score
                        .map_or_else(|| "not checked".to_string(), |s| format!("{s} / 100")),
                ),
                text(&c.open_alerts.to_string()),
                text(
                    &events_per_day(c.event_count, c.backfill.done, from, now)
                        .map_or_else(|| "after the backfill".to_string(), |n| n.to_string()),
                ),
            ])
        })
        .collect();
    let said = match rows.len() {
        0 => "No connections yet.".to_string(),
        1 => "1 connection".to_string(),
        n => format!("{n} connections"),
    };
    fill(&view.connections, &said, rows);
}
