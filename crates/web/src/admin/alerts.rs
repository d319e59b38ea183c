//! Every connection's alerts: filtered by status, their evidence on demand,
//! acknowledged, closed or reopened in place. An alert's evidence has its
//! own address (`#/alerts/<id>`), so a link to it can be shared.

use std::cell::RefCell;
use std::rc::Rc;

use snc_core::api::routes::ApiMethod;
use snc_core::watch::detect::{AlertStatus, StoredAlert};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlSelectElement};

use super::details::{AlertPage, EventPage};
use super::{button, cell, encode, focus, h, head, live, on, on_action, problem_text};
use crate::api::ApiClient;
use crate::js::spawn;

pub struct View {
    client: Rc<ApiClient>,
    status: HtmlSelectElement,
    note: Element,
    table: Element,
    evidence: Element,
    alerts: RefCell<Vec<StoredAlert>>,
}

enum Action {
    Evidence(String),
    Set(String, AlertStatus),
}

impl Action {
    fn parse(action: &str, id: &str) -> Option<Action> {
        Some(match action {
            "evidence" => Action::Evidence(id.into()),
            "acknowledge" => Action::Set(id.into(), AlertStatus::Acknowledged),
            "close" => Action::Set(id.into(), AlertStatus::Closed),
            "reopen" => Action::Set(id.into(), AlertStatus::Open),
            _ => return None,
        })
    }
}

/// Mounts the alerts view in `root` with `{apiBase, token}`; answers
/// `{open(id), refresh}`: the evidence of the alert an address names, and
/// the list read again (the page asks each time it shows the view).
#[wasm_bindgen(js_name = mountAlerts)]
pub fn mount_alerts(root: Element, options: JsValue) -> JsValue {
    let _ = root.append_child(
        &h("h2")
            .id("alerts-title")
            .attr("tabindex", "-1")
            .class("section-title")
            .text("Alerts")
            .el(),
    );
    let view = mount(&root, super::client(&options));
    let v = view.clone();
    let open = Closure::<dyn FnMut(String)>::new(move |id: String| {
        spawn(Box::pin(open(v.clone(), id)));
    });
    let again = Closure::<dyn FnMut()>::new(move || spawn(Box::pin(load(view.clone()))));
    let answer = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&answer, &"open".into(), open.as_ref());
    let _ = js_sys::Reflect::set(&answer, &"refresh".into(), again.as_ref());
    open.forget();
    again.forget();
    answer.into()
}

/// The alert an address names, read on its own: it need not be among the
/// listed ones (another status, or older than the list's page).
async fn open(view: Rc<View>, id: String) -> Result<JsValue, JsValue> {
    let path = format!("/alerts/{}", encode(&id));
    match view.client.fetch::<StoredAlert>(&path).await {
        Ok(alert) => evidence(view, alert).await,
        Err(p) => {
            view.note.set_text_content(Some(&problem_text(&p)));
            Ok(JsValue::UNDEFINED)
        }
    }
}

pub fn mount(root: &Element, client: Rc<ApiClient>) -> Rc<View> {
    let status = h("select")
        .id("al-status")
        .children(
            [
                ("open", "open"),
                ("acknowledged", "acknowledged"),
                ("closed", "closed"),
                ("", "any status"),
            ]
            .into_iter()
            .map(|(v, t)| h("option").attr("value", v).text(t).el()),
        )
        .el();
    let form = h("form")
        .class("filters")
        .attr("aria-label", "Filter alerts")
        .child(h("label").attr("for", "al-status").text("Status"))
        .child(status.clone())
        .child(h("button").attr("type", "submit").text("Show alerts"))
        .el();
    let view = Rc::new(View {
        client,
        status: status.unchecked_into(),
        note: live(),
        table: h("table").class("events alerts-table").el(),
        evidence: h("div").class("evidence").el(),
        alerts: RefCell::new(Vec::new()),
    });
    // The data behind the places alerts name asks for this link (README).
    let credit = h("p")
        .class("small")
        .text("Countries and networks of addresses: ")
        .child(
            h("a")
                .attr("href", "https://db-ip.com")
                .text("IP Geolocation by DB-IP"),
        )
        .child(h("span").text(", RouteViews and NRO (CC BY 4.0)."))
        .el();
    for part in [
        form.clone(),
        view.note.clone(),
        view.table.clone(),
        view.evidence.clone(),
        credit,
    ] {
        let _ = root.append_child(&part);
    }
    let v = view.clone();
    on(&form, "submit", move |ev| {
        ev.prevent_default();
        spawn(Box::pin(load(v.clone())));
    });
    let v = view.clone();
    on_action(&view.table, move |action, id| {
        match Action::parse(action, id) {
            Some(Action::Evidence(id)) => {
                if let Some(alert) = find(&v, &id) {
                    spawn(Box::pin(evidence(v.clone(), alert)));
                }
            }
            Some(Action::Set(id, to)) => spawn(Box::pin(set_status(v.clone(), id, to))),
            None => {}
        }
    });
    spawn(Box::pin(load(view.clone())));
    view
}

pub async fn load(view: Rc<View>) -> Result<JsValue, JsValue> {
    let chosen = view.status.value();
    let mut path = "/alerts?limit=200".to_string();
    if !chosen.is_empty() {
        path.push_str(&format!("&status={}", encode(&chosen)));
    }
    let page: AlertPage = match view.client.fetch(&path).await {
        Ok(p) => p,
        Err(p) => {
            super::caption(&view.table, &p.detail);
            return Ok(JsValue::UNDEFINED);
        }
    };
    let n = page.alerts.len();
    let plural = if n == 1 { "" } else { "s" };
    let said = if chosen.is_empty() {
        format!("{n} alert{plural}")
    } else {
        format!("{n} {chosen} alert{plural}")
    };
    let rows = page.alerts.iter().map(|s| {
        let a = &s.alert;
        let act = |label: &str, action: &str| {
            button(label)
                .class("secondary")
                .attr("aria-label", &format!("{label}: {}", a.title))
                .action(action, &a.id)
                .el()
        };
        let mut actions = vec![act("Evidence", "evidence")];
        if s.status != AlertStatus::Acknowledged {
            actions.push(act("Acknowledge", "acknowledge"));
        }
        if s.status != AlertStatus::Closed {
            actions.push(act("Close", "close"));
        }
        if s.status != AlertStatus::Open {
            actions.push(act("Reopen", "reopen"));
        }
        h("tr")
            .class(&format!("severity-{}", a.severity.as_str()))
            .attr("data-alert", &a.id)
            .children([
                cell(a.severity.as_str()),
                cell(a.rule.as_str()),
                h("td")
                    .child(h("strong").text(&a.title))
                    .child(h("br"))
                    .child(h("span").class("small").text(&a.summary))
                    .el(),
                cell(a.actor.as_deref().unwrap_or("")),
                cell(a.source_ip.as_deref().unwrap_or("")),
                cell(&a.first_seen),
                cell(&a.last_seen),
                cell(&a.count.to_string()),
                cell(s.status.as_str()),
                h("td").class("actions").children(actions).el(),
            ])
            .el()
    });
    let body = h("tbody").children(rows).el();
    view.table.set_text_content(None);
    for part in [
        h("caption").text(&said).el(),
        head(&[
            "Severity",
            "Rule",
            "Alert",
            "Actor",
            "Source IP",
            "First seen",
            "Last seen",
            "Count",
            "Status",
            "Actions",
        ]),
        body,
    ] {
        let _ = view.table.append_child(&part);
    }
    *view.alerts.borrow_mut() = page.alerts;
    Ok(JsValue::UNDEFINED)
}

fn find(view: &View, id: &str) -> Option<StoredAlert> {
    view.alerts
        .borrow()
        .iter()
        .find(|a| a.alert.id == id)
        .cloned()
}

async fn set_status(view: Rc<View>, id: String, to: AlertStatus) -> Result<JsValue, JsValue> {
    let Some(s) = find(&view, &id) else {
        return Ok(JsValue::UNDEFINED);
    };
    let path = format!("/alerts/{}", encode(&id));
    let body = format!("{{\"status\":\"{}\"}}", to.as_str());
    let client = view.client.clone();
    match client.call(ApiMethod::Patch, &path, Some(&body)).await {
        Ok(_) => {
            view.note
                .set_text_content(Some(&format!("{}: {}.", s.alert.title, to.as_str())));
            load(view.clone()).await
        }
        Err(p) => {
            view.note.set_text_content(Some(&problem_text(&p)));
            Ok(JsValue::UNDEFINED)
        }
    }
}

async fn evidence(view: Rc<View>, s: StoredAlert) -> Result<JsValue, JsValue> {
    let a = &s.alert;
    // The address now names this alert: the link in the bar can be shared.
    // (A replaced history entry: no second navigation; not when the admin
    // has moved to another view meanwhile.)
    let shown = !matches!(view.evidence.closest("[hidden]"), Ok(Some(_)));
    if let Some(history) = web_sys::window()
        .and_then(|w| w.history().ok())
        .filter(|_| shown)
    {
        let hash = snc_core::api::page::PageRoute {
            view: snc_core::api::page::View::Alerts,
            id: Some(a.id.clone()),
        }
        .hash();
        let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&hash));
    }
    // Up to a second past the last evidence: `to` is exclusive.
    let last = js_sys::Date::new(&JsValue::from_str(&a.last_seen));
    let to = js_sys::Date::new(&JsValue::from_f64(last.get_time() + 1_000.0));
    let path = format!(
        "/connections/{}/events?limit=1000&from={}&to={}",
        encode(&a.connection_id),
        encode(&a.first_seen),
        encode(&String::from(to.to_iso_string()))
    );
    let page = view.client.fetch::<EventPage>(&path).await;
    let (said, events) = match page {
        Ok(p) => {
            let events: Vec<_> = p
                .events
                .into_iter()
                .filter(|e| a.event_ids.contains(&e.id))
                .collect();
            (
                format!(
                    "{} of {} evidence events · ATT&CK {}",
                    events.len(),
                    a.event_ids.len(),
                    a.attack.join(", ")
                ),
                events,
            )
        }
        Err(p) => (p.detail, Vec::new()),
    };
    let heading = h("h3")
        .id("evidence-title")
        .attr("tabindex", "-1")
        .text(&format!("Evidence: {}", a.title))
        .el();
    let rows = events.iter().map(|e| {
        h("tr")
            .children([
                cell(&e.occurred_at),
                cell(e.kind.as_str()),
                cell(e.actor.as_deref().unwrap_or("")),
                cell(e.source_ip.as_deref().unwrap_or("")),
                cell(&e.id),
            ])
            .el()
    });
    view.evidence.set_text_content(None);
    for part in [
        heading.clone(),
        h("p").text(&said).el(),
        h("table")
            .class("events")
            .child(head(&["When", "Kind", "Actor", "Source IP", "Event"]))
            .child(h("tbody").children(rows))
            .el(),
    ] {
        let _ = view.evidence.append_child(&part);
    }
    focus(&heading);
    Ok(JsValue::UNDEFINED)
}
