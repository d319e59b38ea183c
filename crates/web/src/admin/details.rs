//! A connection's detail views, drawn below the list: its activity (filters,
//! a chart of events per day marking its alerts, the latest events), its
//! posture (failing checks first, with what to do) and its accounts.

use std::collections::BTreeMap;
use std::rc::Rc;

use serde::Deserialize;
use snc_core::api::connection::Connection;
use snc_core::api::routes::ApiMethod;
use snc_core::pull::events::{Event, Kind};
use snc_core::watch::detect::StoredAlert;
use snc_core::watch::posture::{CheckStatus, PostureReport};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlInputElement, HtmlSelectElement};

use super::{button, caption, cell, encode, focus, h, head, live, on, problem_text};
use crate::api::ApiClient;
use crate::js::spawn;

/// Where a detail view draws (below the connections' list) and the client
/// it reads with.
pub struct Pane {
    pub client: Rc<ApiClient>,
    pub detail: Element,
}

#[derive(Deserialize)]
pub struct EventPage {
    pub events: Vec<Event>,
}

#[derive(Deserialize)]
pub struct AlertPage {
    pub alerts: Vec<StoredAlert>,
}

#[derive(Deserialize)]
struct ScorePoint {
    checked_at: String,
    score: u8,
}

#[derive(Deserialize)]
struct PostureAnswer {
    #[serde(flatten)]
    report: PostureReport,
    #[serde(default)]
    history: Vec<ScorePoint>,
}

#[derive(Deserialize)]
struct Account {
    user_name: String,
    name: String,
    active: bool,
    locked_out: bool,
    last_login_at: Option<String>,
    roles: Vec<String>,
    groups: Vec<String>,
    privileged: bool,
}

#[derive(Deserialize)]
struct AccountPage {
    accounts: Vec<Account>,
    next_cursor: Option<String>,
}

fn input(el: &Element) -> HtmlInputElement {
    el.clone().unchecked_into()
}

fn select(el: &Element) -> HtmlSelectElement {
    el.clone().unchecked_into()
}

/// A `datetime-local` value (the admin's local time) as RFC 3339 UTC.
fn local_to_utc(value: &str) -> String {
    String::from(js_sys::Date::new(&JsValue::from_str(value)).to_iso_string())
}

/// Puts `parts` in the detail area and focuses its heading, so a screen
/// reader hears where it is.
fn draw(view: &Pane, parts: &[Element]) {
    view.detail.set_text_content(None);
    for p in parts {
        let _ = view.detail.append_child(p);
    }
}

fn focus_heading(view: &Pane) {
    if let Ok(Some(heading)) = view.detail.query_selector("h3") {
        let _ = heading.set_attribute("tabindex", "-1");
        focus(&heading);
    }
}

pub async fn activity(view: Rc<Pane>, c: Connection) -> Result<JsValue, JsValue> {
    let kind = h("select")
        .id("f-kind")
        .child(h("option").attr("value", "").text("All kinds"))
        .children(
            Kind::ALL
                .iter()
                .map(|k| h("option").attr("value", k.as_str()).text(k.as_str()).el()),
        )
        .el();
    let actor = h("input").id("f-actor").attr("type", "text").el();
    let from = h("input").id("f-from").attr("type", "datetime-local").el();
    let to = h("input").id("f-to").attr("type", "datetime-local").el();
    let form = h("form")
        .class("filters")
        .attr("aria-label", "Filter activity")
        .child(h("label").attr("for", "f-kind").text("Kind"))
        .child(kind.clone())
        .child(h("label").attr("for", "f-actor").text("Actor"))
        .child(actor.clone())
        .child(h("label").attr("for", "f-from").text("From"))
        .child(from.clone())
        .child(h("label").attr("for", "f-to").text("To"))
        .child(to.clone())
        .child(h("button").attr("type", "submit").text("Show"))
        .el();
    let chart = h("div").class("chart").el();
    let table = h("table").class("events").el();
    draw(
        &view,
        &[
            h("h3").text(&format!("Activity of {}", c.name)).el(),
            form.clone(),
            chart.clone(),
            table.clone(),
        ],
    );
    let filters = Rc::new(ActivityFilters {
        kind: select(&kind),
        actor: input(&actor),
        from: input(&from),
        to: input(&to),
        chart,
        table,
        id: c.id.clone(),
    });
    let (v, f) = (view.clone(), filters.clone());
    on(&form, "submit", move |ev| {
        ev.prevent_default();
        spawn(Box::pin(load_activity(v.clone(), f.clone())));
    });
    load_activity(view.clone(), filters).await?;
    focus_heading(&view);
    Ok(JsValue::UNDEFINED)
}

struct ActivityFilters {
    kind: HtmlSelectElement,
    actor: HtmlInputElement,
    from: HtmlInputElement,
    to: HtmlInputElement,
    chart: Element,
    table: Element,
    id: String,
}

async fn load_activity(view: Rc<Pane>, f: Rc<ActivityFilters>) -> Result<JsValue, JsValue> {
    let mut q = vec!["limit=1000".to_string()];
    if !f.kind.value().is_empty() {
        q.push(format!("kind={}", encode(&f.kind.value())));
    }
    let actor = f.actor.value();
    if !actor.trim().is_empty() {
        q.push(format!("actor={}", encode(actor.trim())));
    }
    for (name, field) in [("from", &f.from), ("to", &f.to)] {
        if !field.value().is_empty() {
            q.push(format!("{name}={}", encode(&local_to_utc(&field.value()))));
        }
    }
    let id = encode(&f.id);
    // The events and the alerts marked on their chart, read at once.
    let events_path = format!("/connections/{id}/events?{}", q.join("&"));
    let alerts_path = format!("/alerts?connection_id={id}&limit=1000");
    let (events, raised) = futures_util::future::join(
        view.client.fetch::<EventPage>(&events_path),
        view.client.fetch::<AlertPage>(&alerts_path),
    )
    .await;
    let raised = raised.map(|p| p.alerts).unwrap_or_default();
    let events = match events {
        Ok(p) => p.events,
        Err(p) => {
            caption(&f.table, &p.detail);
            return Ok(JsValue::UNDEFINED);
        }
    };
    draw_chart(&f.chart, &events, &raised);
    caption(&f.table, &format!("{} most recent events", events.len()));
    let rows = events.iter().take(200).map(|e| {
        let target = e.target.as_ref().map_or(String::new(), |t| {
            [&t.table, &t.record, &t.field]
                .into_iter()
                .flatten()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join(" / ")
        });
        h("tr")
            .children([
                cell(&e.occurred_at),
                cell(e.kind.as_str()),
                cell(e.actor.as_deref().unwrap_or("")),
                cell(e.source_ip.as_deref().unwrap_or("")),
                cell(&target),
            ])
            .el()
    });
    let _ = f
        .table
        .append_child(&head(&["When", "Kind", "Actor", "Source IP", "Target"]));
    let _ = f.table.append_child(&h("tbody").children(rows).el());
    Ok(JsValue::UNDEFINED)
}

const SVG: &str = "http://www.w3.org/2000/svg";

fn svg(tag: &str, attrs: &[(&str, String)]) -> Option<Element> {
    let node = crate::dom::document()?
        .create_element_ns(Some(SVG), tag)
        .ok()?;
    for (k, v) in attrs {
        let _ = node.set_attribute(k, v);
    }
    Some(node)
}

/// Events per day as bars, days with alerts marked; text stays text.
pub fn draw_chart(target: &Element, events: &[Event], raised: &[StoredAlert]) {
    let mut days: BTreeMap<String, u64> = BTreeMap::new();
    for e in events {
        *days
            .entry(e.occurred_at.chars().take(10).collect())
            .or_default() += 1;
    }
    let mut alert_days: BTreeMap<String, u64> = BTreeMap::new();
    for a in raised {
        *alert_days
            .entry(a.alert.first_seen.chars().take(10).collect())
            .or_default() += 1;
    }
    let max = days.values().copied().max().unwrap_or(1).max(1) as f64;
    let (w, height) = (40.0, 120.0);
    let described: Vec<String> = days
        .iter()
        .map(|(d, n)| match alert_days.get(d) {
            Some(a) => format!("{d} {n} ({a} alerts)"),
            None => format!("{d} {n}"),
        })
        .collect();
    let label = if described.is_empty() {
        "none".to_string()
    } else {
        described.join(", ")
    };
    let Some(chart) = svg(
        "svg",
        &[
            (
                "viewBox",
                format!("0 0 {} {}", days.len().max(1) as f64 * w, height + 20.0),
            ),
            ("role", "img".into()),
            ("aria-label", format!("Events per day: {label}")),
        ],
    ) else {
        return;
    };
    for (i, (day, n)) in days.iter().enumerate() {
        let x = i as f64 * w;
        let bar_height = *n as f64 / max * height;
        let parts = [
            svg(
                "rect",
                &[
                    ("x", (x + 4.0).to_string()),
                    ("y", (height - bar_height).to_string()),
                    ("width", (w - 8.0).to_string()),
                    ("height", bar_height.to_string()),
                    ("class", "bar".into()),
                ],
            ),
            svg(
                "text",
                &[
                    ("x", (x + w / 2.0).to_string()),
                    ("y", (height + 14.0).to_string()),
                    ("text-anchor", "middle".into()),
                    ("font-size", "9".into()),
                ],
            )
            .inspect(|t| t.set_text_content(Some(day.get(5..).unwrap_or(day)))),
            alert_days
                .contains_key(day)
                .then(|| {
                    svg(
                        "circle",
                        &[
                            ("cx", (x + w / 2.0).to_string()),
                            ("cy", (height - bar_height - 8.0).max(6.0).to_string()),
                            ("r", "5".into()),
                            ("class", "alert-mark".into()),
                        ],
                    )
                })
                .flatten(),
        ];
        for p in parts.into_iter().flatten() {
            let _ = chart.append_child(&p);
        }
    }
    target.set_text_content(None);
    let _ = target.append_child(&chart);
}

pub async fn posture(view: Rc<Pane>, c: Connection) -> Result<JsValue, JsValue> {
    let summary = h("p").class("posture-score").el();
    let check = button("Check now").class("secondary").el();
    let note = live();
    let table = h("table").class("events posture").el();
    let history = h("p").class("small").el();
    draw(
        &view,
        &[
            h("h3").text(&format!("Posture of {}", c.name)).el(),
            summary.clone(),
            check.clone(),
            note.clone(),
            table.clone(),
            history.clone(),
        ],
    );
    let parts = Rc::new(PostureParts {
        summary,
        table,
        history,
        id: c.id.clone(),
    });
    let (v, p, n) = (view.clone(), parts.clone(), note);
    on(&check, "click", move |_| {
        spawn(Box::pin(check_now(v.clone(), p.clone(), n.clone())));
    });
    load_posture(view.clone(), parts).await?;
    focus_heading(&view);
    Ok(JsValue::UNDEFINED)
}

struct PostureParts {
    summary: Element,
    table: Element,
    history: Element,
    id: String,
}

async fn check_now(
    view: Rc<Pane>,
    parts: Rc<PostureParts>,
    note: Element,
) -> Result<JsValue, JsValue> {
    let path = format!("/connections/{}/posture/check", encode(&parts.id));
    match view.client.call(ApiMethod::Post, &path, None).await {
        Ok(_) => {
            note.set_text_content(Some(
                "Checking with the next pull, which starts now. This view updates when it is done.",
            ));
            let wait = js_sys::Promise::new(&mut |resolve, _| {
                if let Some(w) = web_sys::window() {
                    let _ =
                        w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, 3_000);
                }
            });
            let _ = wasm_bindgen_futures::JsFuture::from(wait).await;
            load_posture(view, parts).await
        }
        Err(p) => {
            note.set_text_content(Some(&problem_text(&p)));
            Ok(JsValue::UNDEFINED)
        }
    }
}

async fn load_posture(view: Rc<Pane>, parts: Rc<PostureParts>) -> Result<JsValue, JsValue> {
    let path = format!("/connections/{}/posture", encode(&parts.id));
    let answer: PostureAnswer = match view.client.fetch(&path).await {
        Ok(a) => a,
        Err(p) => {
            parts.summary.set_text_content(Some(&p.detail));
            parts.table.set_text_content(None);
            return Ok(JsValue::UNDEFINED);
        }
    };
    let r = &answer.report;
    let failing = r
        .checks
        .iter()
        .filter(|k| k.status == CheckStatus::Fail)
        .count();
    parts.summary.set_text_content(Some(&format!(
        "Score {}/100 · {failing} of {} checks failing · checked {}",
        r.score,
        r.checks.len(),
        r.checked_at
    )));
    caption(&parts.table, "Hardening checks, failing first");
    let rows = r.checks.iter().map(|k| {
        let in_force = match k.status {
            CheckStatus::Unknown => format!("unknown: {}", k.why.as_deref().unwrap_or("")),
            _ => format!(
                "{}{}",
                k.actual.as_deref().unwrap_or(""),
                if k.defaulted { " (default)" } else { "" }
            ),
        };
        h("tr")
            .class(&format!("check-{}", k.status.as_str()))
            .children([
                cell(k.status.as_str()),
                cell(k.severity.as_str()),
                h("td")
                    .child(h("strong").text(&k.title))
                    .child(h("br"))
                    .child(h("code").text(&k.id))
                    .el(),
                cell(&k.expected),
                cell(&in_force),
                cell(if k.status == CheckStatus::Pass {
                    ""
                } else {
                    &k.advice
                }),
            ])
            .el()
    });
    let _ = parts.table.append_child(&head(&[
        "Status",
        "Severity",
        "Check",
        "Expected",
        "In force",
        "What to do",
    ]));
    let _ = parts.table.append_child(&h("tbody").children(rows).el());
    let points: Vec<String> = answer
        .history
        .iter()
        .map(|p| {
            let at: String = p.checked_at.chars().take(16).collect();
            format!("{} {}", at.replace('T', " "), p.score)
        })
        .collect();
    parts
        .history
        .set_text_content(Some(&format!("Score history: {}", points.join(" · "))));
    Ok(JsValue::UNDEFINED)
}

pub async fn accounts(view: Rc<Pane>, c: Connection) -> Result<JsValue, JsValue> {
    let role = h("input").id("a-role").attr("type", "text").el();
    let active = h("select")
        .id("a-active")
        .children(
            [("", "All"), ("true", "Active"), ("false", "Inactive")]
                .into_iter()
                .map(|(v, t)| h("option").attr("value", v).text(t).el()),
        )
        .el();
    let form = h("form")
        .class("filters")
        .attr("aria-label", "Filter accounts")
        .child(h("label").attr("for", "a-role").text("Role"))
        .child(role.clone())
        .child(h("label").attr("for", "a-active").text("State"))
        .child(active.clone())
        .child(h("button").attr("type", "submit").text("Show"))
        .el();
    let table = h("table").class("events accounts").el();
    draw(
        &view,
        &[
            h("h3").text(&format!("Accounts of {}", c.name)).el(),
            form.clone(),
            table.clone(),
        ],
    );
    let filters = Rc::new(AccountFilters {
        role: input(&role),
        active: select(&active),
        table,
        id: c.id.clone(),
    });
    let (v, f) = (view.clone(), filters.clone());
    on(&form, "submit", move |ev| {
        ev.prevent_default();
        spawn(Box::pin(load_accounts(v.clone(), f.clone())));
    });
    load_accounts(view.clone(), filters).await?;
    focus_heading(&view);
    Ok(JsValue::UNDEFINED)
}

struct AccountFilters {
    role: HtmlInputElement,
    active: HtmlSelectElement,
    table: Element,
    id: String,
}

async fn load_accounts(view: Rc<Pane>, f: Rc<AccountFilters>) -> Result<JsValue, JsValue> {
    let mut q = vec!["limit=500".to_string()];
    let role = f.role.value();
    if !role.trim().is_empty() {
        q.push(format!("role={}", encode(role.trim())));
    }
    if !f.active.value().is_empty() {
        q.push(format!("active={}", encode(&f.active.value())));
    }
    let path = format!("/connections/{}/accounts?{}", encode(&f.id), q.join("&"));
    let page: AccountPage = match view.client.fetch(&path).await {
        Ok(p) => p,
        Err(p) => {
            caption(&f.table, &p.detail);
            return Ok(JsValue::UNDEFINED);
        }
    };
    let privileged = page.accounts.iter().filter(|a| a.privileged).count();
    let first = if page.next_cursor.is_some() {
        " (first 500)"
    } else {
        ""
    };
    caption(
        &f.table,
        &format!(
            "{} accounts{first}, {privileged} privileged",
            page.accounts.len()
        ),
    );
    let rows = page.accounts.iter().map(|a| {
        let mut state = vec![if a.active { "active" } else { "inactive" }];
        if a.locked_out {
            state.push("locked out");
        }
        h("tr")
            .children([
                cell(&a.user_name),
                cell(&a.name),
                cell(&state.join(", ")),
                cell(if a.privileged { "yes" } else { "" }),
                cell(&a.roles.join(", ")),
                cell(&a.groups.join(", ")),
                cell(a.last_login_at.as_deref().unwrap_or("")),
            ])
            .el()
    });
    let _ = f.table.append_child(&head(&[
        "User",
        "Name",
        "State",
        "Privileged",
        "Roles",
        "Groups",
        "Last sign-in",
    ]));
    let _ = f.table.append_child(&h("tbody").children(rows).el());
    Ok(JsValue::UNDEFINED)
}
