//! Connections: one entry per connection with its status, warnings,
//! progress and actions, updated in place every 3 s (an open reconnect form,
//! a delete confirmation and the focus stay as they are); every action shows
//! what really came of it. The detail views (activity, posture, accounts)
//! are their own module, drawn below the list.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use serde::Deserialize;
use snc_core::api::connection::Connection;
use snc_core::api::routes::ApiMethod;
use snc_core::problem::CONNECTOR_UNREACHABLE;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlInputElement, HtmlProgressElement};

use super::{button, client, encode, focus, h, live, on, on_action, problem_text};
use crate::api::ApiClient;
use crate::js::spawn;

#[derive(Deserialize)]
struct ConnectionList {
    connections: Vec<Connection>,
}

/// What a click on a connection asks for.
enum Action {
    Activity,
    Posture,
    Accounts,
    Pull,
    Toggle,
    Reconnect,
    Delete,
    DeleteForGood,
    Keep,
}

impl Action {
    fn parse(action: &str) -> Option<Action> {
        Some(match action {
            "activity" => Action::Activity,
            "posture" => Action::Posture,
            "accounts" => Action::Accounts,
            "pull" => Action::Pull,
            "toggle" => Action::Toggle,
            "reconnect" => Action::Reconnect,
            "delete" => Action::Delete,
            "delete-yes" => Action::DeleteForGood,
            "delete-no" => Action::Keep,
            _ => return None,
        })
    }
}

/// One connection's entry: its parts, updated in place.
struct Row {
    item: Element,
    name: Element,
    badge: Element,
    meta: Element,
    notes: Element,
    /// What the notes were drawn from: redrawn only when it changes.
    notes_key: RefCell<String>,
    progress_label: Element,
    progress: HtmlProgressElement,
    toggle: Element,
    /// Each button with the word its accessible name starts with (the
    /// toggle's is its current text).
    buttons: Vec<(Element, Option<&'static str>)>,
    connection: RefCell<Connection>,
}

pub struct View {
    pub client: Rc<ApiClient>,
    status: Element,
    list: Element,
    empty: Element,
    /// Where the activity, posture and accounts views are drawn.
    pane: Rc<super::details::Pane>,
    rows: RefCell<HashMap<String, Rc<Row>>>,
    /// The connection an address named (`#/connections/<id>`), shown once
    /// the list has it.
    wanted: RefCell<Option<String>>,
    /// The 3 s refresh, stopped when the credential is refused: a revoked
    /// key left open in a tab must not keep knocking.
    timer: RefCell<Option<i32>>,
    /// A listed backfill moves: every tick refreshes (core's
    /// `list_refresh_due`).
    moving: Cell<bool>,
    /// Ticks since the last refresh.
    quiet: Cell<u32>,
}

fn method_label(m: &str) -> &str {
    match m {
        "oauth" => "OAuth",
        "client_credentials" => "client credentials",
        "basic" => "legacy",
        other => other,
    }
}

/// Mounts the connections and detail views in `root`; answers `{refresh,
/// open(id)}`: the page reads the list again each time it shows it, and
/// opens the connection an address names.
#[wasm_bindgen(js_name = mountAdmin)]
pub fn mount_admin(root: Element, options: JsValue) -> JsValue {
    let status = live();
    let list = h("ul")
        .class("connections")
        .attr("aria-label", "Connections")
        .el();
    let empty = h("p").text("No connections yet.").hidden().el();
    let detail = h("div").class("activity").el();
    for part in [
        h("h2")
            .id("connections-title")
            .attr("tabindex", "-1")
            .class("section-title")
            .text("Connections")
            .el(),
        status.clone(),
        list.clone(),
        empty.clone(),
        detail.clone(),
    ] {
        let _ = root.append_child(&part);
    }
    let client = client(&options);
    let view = Rc::new(View {
        pane: Rc::new(super::details::Pane {
            client: client.clone(),
            detail,
        }),
        client,
        status,
        list: list.clone(),
        empty,
        rows: RefCell::new(HashMap::new()),
        wanted: RefCell::new(None),
        timer: RefCell::new(None),
        moving: Cell::new(true),
        quiet: Cell::new(0),
    });
    let v = view.clone();
    on_action(&list, move |action, id| {
        let Some(action) = Action::parse(action) else {
            return;
        };
        let Some(row) = v.rows.borrow().get(id).cloned() else {
            return;
        };
        act(&v, &row, action);
    });
    let v = view.clone();
    on(&list, "submit", move |ev| {
        ev.prevent_default();
        let Some(form) = ev.target().and_then(|t| t.dyn_into::<Element>().ok()) else {
            return;
        };
        let id = form.get_attribute("data-id").unwrap_or_default();
        spawn(Box::pin(reconnect(v.clone(), id, form)));
    });
    spawn(Box::pin(refresh(view.clone())));
    let v = view.clone();
    // A tab in the background does not refresh, and a quiet list less
    // often: each list asks the connected connections' objects for their
    // pull times.
    let tick = Closure::<dyn FnMut()>::new(move || {
        let hidden = web_sys::window()
            .and_then(|w| w.document())
            .is_some_and(|d| d.hidden());
        // The page signed out (its views are gone): no more reads.
        if !v.list.is_connected() {
            if let (Some(w), Some(t)) = (web_sys::window(), v.timer.borrow_mut().take()) {
                w.clear_interval_with_handle(t);
            }
            return;
        }
        // Another view shown: the page reads the list again when it
        // comes back.
        let elsewhere = matches!(v.list.closest("[hidden]"), Ok(Some(_)));
        if hidden || elsewhere {
            // Back in front, the first tick refreshes.
            v.quiet.set(snc_core::api::connection::QUIET_LIST_TICKS);
            return;
        }
        if snc_core::api::connection::list_refresh_due(v.moving.get(), v.quiet.get()) {
            v.quiet.set(0);
            spawn(Box::pin(refresh(v.clone())));
        } else {
            v.quiet.set(v.quiet.get() + 1);
        }
    });
    if let Some(w) = web_sys::window() {
        *view.timer.borrow_mut() = w
            .set_interval_with_callback_and_timeout_and_arguments_0(
                tick.as_ref().unchecked_ref(),
                3_000,
            )
            .ok();
    }
    tick.forget();
    let v = view.clone();
    let again = Closure::<dyn FnMut()>::new(move || spawn(Box::pin(refresh(v.clone()))));
    let answer = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&answer, &"refresh".into(), again.as_ref());
    again.forget();
    let v = view.clone();
    let open = Closure::<dyn FnMut(String)>::new(move |id: String| {
        *v.wanted.borrow_mut() = Some(id);
        show_wanted(&v);
    });
    let _ = js_sys::Reflect::set(&answer, &"open".into(), open.as_ref());
    open.forget();
    answer.into()
}

/// The connection an address named: its entry scrolled to and focused, its
/// activity drawn below the list. Waits for the list when it has not come.
fn show_wanted(view: &Rc<View>) {
    let Some(id) = view.wanted.borrow().clone() else {
        return;
    };
    let row = view.rows.borrow().get(&id).cloned();
    match row {
        Some(row) => {
            *view.wanted.borrow_mut() = None;
            let _ = row.name.set_attribute("tabindex", "-1");
            focus(&row.name);
            act(view, &row, Action::Activity);
        }
        None if view.list.child_element_count() > 0 || crate::dom::is_shown(&view.empty) => {
            *view.wanted.borrow_mut() = None;
            say(
                view,
                &format!("There is no connection {id} (deleted?)."),
                "error",
            );
        }
        None => {}
    }
}

fn make_row(c: &Connection) -> Row {
    let button_for = |label: &str, action: &str, class: &str| {
        button(label).class(class).action(action, &c.id).el()
    };
    let toggle = button_for("Disable", "toggle", "secondary");
    let buttons = vec![
        (
            button_for("Activity", "activity", "secondary"),
            Some("Activity"),
        ),
        (
            button_for("Posture", "posture", "secondary"),
            Some("Posture"),
        ),
        (
            button_for("Accounts", "accounts", "secondary"),
            Some("Accounts"),
        ),
        (
            button_for("Pull now", "pull", "secondary"),
            Some("Pull now"),
        ),
        (toggle.clone(), None),
        (
            button_for("Reconnect", "reconnect", "secondary"),
            Some("Reconnect"),
        ),
        (button_for("Delete", "delete", "danger"), Some("Delete")),
    ];
    let progress_id = format!("bf-{}", c.id);
    let row = Row {
        item: h("li").class("connection").attr("data-id", &c.id).el(),
        name: h("h3").el(),
        badge: h("span").class("snc-badge").el(),
        meta: h("p").class("meta").el(),
        notes: h("div").el(),
        notes_key: RefCell::new(String::new()),
        progress_label: h("label").attr("for", &progress_id).class("small").el(),
        progress: h("progress").id(&progress_id).el().unchecked_into(),
        toggle,
        buttons,
        connection: RefCell::new(c.clone()),
    };
    let actions = h("div")
        .class("actions")
        .children(row.buttons.iter().map(|(b, _)| b.clone()))
        .el();
    for part in [
        h("div")
            .class("row")
            .child(row.name.clone())
            .child(row.badge.clone())
            .el(),
        row.meta.clone(),
        row.notes.clone(),
        row.progress_label.clone(),
        row.progress.clone().into(),
        actions,
    ] {
        let _ = row.item.append_child(&part);
    }
    row
}

fn update(row: &Row, c: &Connection) {
    *row.connection.borrow_mut() = c.clone();
    let status = c.status.as_str();
    row.name.set_text_content(Some(&c.name));
    let _ = row
        .badge
        .set_attribute("class", &format!("snc-badge {status}"));
    let _ = row.badge.set_attribute("data-status", status);
    row.badge.set_text_content(Some(status));
    let posture = c
        .posture_score
        .map_or("not checked yet".to_string(), |s| format!("{s}/100"));
    let plural = if c.open_alerts == 1 { "" } else { "s" };
    row.meta.set_text_content(Some(&format!(
        "{} · {} · {} · last pull {} · {} events · posture {posture} · {} open alert{plural}",
        c.instance_url,
        method_label(&c.method),
        c.release.as_deref().unwrap_or("?"),
        c.last_pull_at.as_deref().unwrap_or("not yet"),
        c.event_count,
        c.open_alerts,
    )));
    let mut key = String::new();
    let mut notes = Vec::new();
    if let Some(d) = &c.status_detail {
        let text = format!("{}: {}", d.code, d.message);
        key.push_str(&text);
        notes.push(h("p").class("snc-error").text(&text).el());
    }
    for w in &c.warnings {
        key.push('\n');
        key.push_str(&w.message);
        notes.push(h("p").class("snc-warning").text(&w.message).el());
    }
    if *row.notes_key.borrow() != key {
        row.notes.set_text_content(None);
        for n in notes {
            let _ = row.notes.append_child(&n);
        }
        *row.notes_key.borrow_mut() = key;
    }
    let b = &c.backfill;
    let total = b.total.max(b.events).max(1);
    row.progress_label.set_text_content(Some(if b.done {
        "Backfill complete"
    } else {
        "Backfill"
    }));
    row.progress.set_max(total as f64);
    row.progress.set_value(b.events.min(total) as f64);
    row.toggle
        .set_text_content(Some(if c.enabled { "Disable" } else { "Enable" }));
    for (b, label) in &row.buttons {
        let word = label.map_or_else(|| b.text_content().unwrap_or_default(), str::to_string);
        let _ = b.set_attribute("aria-label", &format!("{word} {}", c.name));
    }
}

fn act(view: &Rc<View>, row: &Rc<Row>, action: Action) {
    let c = row.connection.borrow().clone();
    let path = format!("/connections/{}", encode(&c.id));
    match action {
        Action::Activity => spawn(Box::pin(super::details::activity(view.pane.clone(), c))),
        Action::Posture => spawn(Box::pin(super::details::posture(view.pane.clone(), c))),
        Action::Accounts => spawn(Box::pin(super::details::accounts(view.pane.clone(), c))),
        Action::Pull => spawn(Box::pin(change(
            view.clone(),
            Change {
                method: ApiMethod::Post,
                path: format!("{path}/pull"),
                body: None,
                done: format!("Pull queued for {}.", c.name),
                what: format!("Pull now {}", c.name),
            },
        ))),
        Action::Toggle => {
            let (to, done, what) = if c.enabled {
                (false, "disabled", "Disable")
            } else {
                (true, "enabled", "Enable")
            };
            spawn(Box::pin(change(
                view.clone(),
                Change {
                    method: ApiMethod::Patch,
                    path,
                    body: Some(format!("{{\"enabled\":{to}}}")),
                    done: format!("{} {done}.", c.name),
                    what: format!("{what} {}", c.name),
                },
            )))
        }
        Action::Reconnect => reconnect_form(row, &c),
        Action::Delete => confirm_delete(row, &c),
        Action::DeleteForGood => spawn(Box::pin(delete(view.clone(), row.clone(), c))),
        Action::Keep => {
            if let Ok(Some(b)) = row.item.query_selector("[role=alertdialog]") {
                b.remove();
            }
        }
    }
}

/// A change and the words for what came of it.
struct Change {
    method: ApiMethod,
    path: String,
    body: Option<String>,
    done: String,
    /// "Pull now Prod": the start of the sentence when it failed.
    what: String,
}

pub fn say(view: &View, text: &str, state: &str) {
    view.status.set_text_content(Some(text));
    let _ = view.status.set_attribute("data-state", state);
}

async fn change(view: Rc<View>, c: Change) -> Result<JsValue, JsValue> {
    match view.client.call(c.method, &c.path, c.body.as_deref()).await {
        Ok(_) => say(&view, &c.done, "ok"),
        Err(p) => say(
            &view,
            &format!("{} failed: {}. {}", c.what, p.title, p.detail),
            "error",
        ),
    }
    refresh(view).await
}

fn confirm_delete(row: &Row, c: &Connection) {
    if let Ok(Some(open)) = row
        .item
        .query_selector("[role=alertdialog] button.secondary")
    {
        focus(&open);
        return;
    }
    let label = format!("del-{}", c.id);
    let no = button("Keep it")
        .class("secondary")
        .action("delete-no", &c.id)
        .el();
    let _ = row.item.append_child(
        &h("div")
            .attr("role", "alertdialog")
            .attr("aria-labelledby", &label)
            .class("confirm")
            .child(h("p").id(&label).text(&format!(
                "Delete {}? Its secrets, cursors and {} events are removed.",
                c.name, c.event_count
            )))
            .child(
                button("Delete for good")
                    .class("danger")
                    .action("delete-yes", &c.id),
            )
            .child(no.clone())
            .el(),
    );
    focus(&no);
}

async fn delete(view: Rc<View>, row: Rc<Row>, c: Connection) -> Result<JsValue, JsValue> {
    let path = format!("/connections/{}", encode(&c.id));
    match view.client.call(ApiMethod::Delete, &path, None).await {
        Ok(_) => {
            if let Ok(Some(b)) = row.item.query_selector("[role=alertdialog]") {
                b.remove();
            }
            say(&view, &format!("{} deleted.", c.name), "ok");
        }
        Err(p) => say(
            &view,
            &format!("Delete {} failed: {}. {}", c.name, p.title, p.detail),
            "error",
        ),
    }
    refresh(view).await
}

/// Each method renews its own secrets: the password, the client secret, or both.
fn reconnect_form(row: &Row, c: &Connection) {
    if let Ok(Some(open)) = row.item.query_selector("form.reconnect") {
        if let Ok(Some(first)) = open.query_selector("input") {
            focus(&first);
        }
        return;
    }
    let mut form = h("form")
        .class("reconnect")
        .attr("aria-label", &format!("Reconnect {}", c.name))
        .attr("data-id", &c.id);
    let mut first = None;
    for (field, label, autocomplete, needed) in [
        (
            "password",
            "Password",
            "current-password",
            c.method != "client_credentials",
        ),
        ("client_secret", "Client secret", "off", c.method != "basic"),
    ] {
        if !needed {
            continue;
        }
        let id = format!(
            "rc-{}-{}",
            if field == "password" { "pw" } else { "sec" },
            c.id
        );
        let input = h("input")
            .id(&id)
            .attr("name", field)
            .attr("type", "password")
            .attr("autocomplete", autocomplete)
            .attr("required", "")
            .el();
        first.get_or_insert_with(|| input.clone());
        form = form
            .child(h("label").attr("for", &id).text(label))
            .child(input);
    }
    let form = form
        .child(h("button").attr("type", "submit").text("Reconnect"))
        .child(h("p").class("snc-error").attr("role", "alert").hidden())
        .el();
    let _ = row.item.append_child(&form);
    if let Some(f) = first {
        focus(&f);
    }
}

async fn reconnect(view: Rc<View>, id: String, form: Element) -> Result<JsValue, JsValue> {
    let Some(c) = view
        .rows
        .borrow()
        .get(&id)
        .map(|r| r.connection.borrow().clone())
    else {
        return Ok(JsValue::UNDEFINED);
    };
    let body = js_sys::Object::new();
    for field in ["password", "client_secret"] {
        if let Ok(Some(input)) = form.query_selector(&format!("input[name={field}]")) {
            if let Ok(input) = input.dyn_into::<HtmlInputElement>() {
                let _ = js_sys::Reflect::set(&body, &field.into(), &input.value().into());
            }
        }
    }
    let text = js_sys::JSON::stringify(&body)
        .ok()
        .and_then(|s| s.as_string());
    let path = format!("/connections/{}/reconnect", encode(&c.id));
    match view
        .client
        .call(ApiMethod::Post, &path, text.as_deref())
        .await
    {
        Ok(_) => {
            // The form held the password: gone with it.
            form.remove();
            say(&view, &format!("{} reconnected.", c.name), "ok");
            refresh(view).await
        }
        Err(p) => {
            if let Ok(Some(err)) = form.query_selector(".snc-error") {
                err.set_text_content(Some(&problem_text(&p)));
                crate::dom::show(&err);
            }
            Ok(JsValue::UNDEFINED)
        }
    }
}

/// Reads the list again and updates each entry in place.
pub async fn refresh(view: Rc<View>) -> Result<JsValue, JsValue> {
    let list: ConnectionList = match view.client.fetch("/connections").await {
        Ok(l) => l,
        Err(p) => {
            if p.is(snc_core::problem::ProblemCode::Unauthorized) {
                if let (Some(w), Some(t)) = (web_sys::window(), view.timer.borrow_mut().take()) {
                    w.clear_interval_with_handle(t);
                }
                say(
                    &view,
                    "The connector refused this sign-in (a revoked or expired key?): the list stops updating. Sign in again.",
                    "error",
                );
                return Ok(JsValue::UNDEFINED);
            }
            let text = if p.code == CONNECTOR_UNREACHABLE {
                "The connector could not be reached; the list will update when it answers again."
                    .to_string()
            } else {
                format!("The list could not be updated: {}", p.detail)
            };
            say(&view, &text, "error");
            return Ok(JsValue::UNDEFINED);
        }
    };
    view.moving.set(snc_core::api::connection::backfill_moving(
        &list.connections,
    ));
    let mut rows = view.rows.borrow_mut();
    let mut before = view.list.first_child();
    for c in &list.connections {
        let row = rows
            .entry(c.id.clone())
            .or_insert_with(|| Rc::new(make_row(c)))
            .clone();
        update(&row, c);
        let node: &web_sys::Node = row.item.as_ref();
        if before.as_ref() != Some(node) {
            let _ = view.list.insert_before(node, before.as_ref());
        }
        before = node.next_sibling();
    }
    rows.retain(|id, row| {
        let keep = list.connections.iter().any(|c| &c.id == id);
        if !keep {
            row.item.remove();
        }
        keep
    });
    if list.connections.is_empty() {
        crate::dom::show(&view.empty);
    } else {
        crate::dom::hide(&view.empty);
    }
    drop(rows);
    show_wanted(&view);
    Ok(JsValue::UNDEFINED)
}
