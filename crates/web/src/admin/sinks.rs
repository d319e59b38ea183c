//! Forwarding: where events and alerts go, each sink's health (state,
//! delivered, pending, dead letters, last success, last error), each sink's
//! dead letters, and for admins: add, test, enable/disable, replay, send the
//! dead letters again, and delete. Credentials are sent once and never
//! shown again; a webhook's signing secret is shown once.

use std::cell::RefCell;
use std::rc::Rc;

use snc_core::api::routes::ApiMethod;
use snc_core::forward::{
    CreatedSink, DeadLetterList, Format, SinkInfo, SinkKind, SinkList, SinkState, Stream,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlInputElement, HtmlSelectElement};

use super::{button, cell, client, encode, focus, h, head, live, on, on_action, problem_text};
use crate::api::ApiClient;
use crate::js::spawn;

/// The credential and parameter fields each kind asks for: (name, label, secret).
fn kind_fields(kind: SinkKind) -> &'static [(&'static str, &'static str, bool)] {
    match kind {
        SinkKind::Webhook => &[],
        SinkKind::SplunkHec => &[("token", "HEC token", true)],
        SinkKind::Elastic => &[
            ("api_key", "API key", true),
            ("index", "Data stream", false),
        ],
        SinkKind::Sentinel => &[
            ("tenant_id", "Tenant ID", false),
            ("client_id", "Client ID", false),
            ("client_secret", "Client secret", true),
            ("dcr_immutable_id", "DCR immutable ID", false),
            ("stream_name", "Stream name", false),
        ],
    }
}

fn format_label(f: Format) -> &'static str {
    match f {
        Format::Contract => "This connector's events",
        Format::Ocsf => "OCSF",
        Format::Ecs => "Elastic Common Schema",
    }
}

/// Who may change sinks: the Actions column and the form are for admins.
#[derive(Clone, Copy, PartialEq)]
enum Caller {
    Admin,
    Reader,
}

enum Action {
    Test(String),
    Toggle(String),
    Replay(String),
    Delete(String),
    Letters(String),
    SendLettersAgain(String),
    Stored,
}

impl Action {
    fn parse(action: &str, id: &str) -> Option<Action> {
        Some(match action {
            "test" => Action::Test(id.into()),
            "toggle" => Action::Toggle(id.into()),
            "replay" => Action::Replay(id.into()),
            "delete" => Action::Delete(id.into()),
            "letters" => Action::Letters(id.into()),
            "letters-again" => Action::SendLettersAgain(id.into()),
            "stored" => Action::Stored,
            _ => return None,
        })
    }
}

#[derive(Clone)]
struct Form {
    name: HtmlInputElement,
    kind: HtmlSelectElement,
    url: HtmlInputElement,
    format: HtmlSelectElement,
    streams: Vec<(Stream, HtmlInputElement)>,
    extra: Element,
    error: Element,
}

struct View {
    client: Rc<ApiClient>,
    caller: Caller,
    note: Element,
    table: Element,
    shown: Element,
    /// One sink's dead letters, when asked for.
    letters: Element,
    form: Option<Form>,
    sinks: RefCell<Vec<SinkInfo>>,
}

fn input(el: &Element) -> HtmlInputElement {
    el.clone().unchecked_into()
}

#[wasm_bindgen(js_name = mountSinks)]
pub fn mount_sinks(root: Element, options: JsValue) {
    // The caller's scopes (GET /me's list) decide, through core's
    // `PageSections`, whether the view offers changes.
    let scopes = js_sys::Reflect::get(&options, &"scopes".into()).unwrap_or(JsValue::UNDEFINED);
    let can_change = crate::js::page_sections(&scopes).sinks_change;
    let caller = if can_change {
        Caller::Admin
    } else {
        Caller::Reader
    };
    let note = live();
    let table = h("table").class("events sinks").el();
    let shown = h("div").class("sink-shown").el();
    let letters = h("section").class("dead-letters").hidden().el();
    for part in [
        h("h2")
            .id("sinks-title")
            .attr("tabindex", "-1")
            .class("section-title")
            .text("Forwarding")
            .el(),
        note.clone(),
        table.clone(),
        shown.clone(),
        letters.clone(),
    ] {
        let _ = root.append_child(&part);
    }
    let form = (caller == Caller::Admin).then(|| build_form(&root));
    let view = Rc::new(View {
        client: client(&options),
        caller,
        note,
        table,
        shown,
        letters,
        form: form.as_ref().map(|(f, _)| f.clone()),
        sinks: RefCell::new(Vec::new()),
    });
    if let Some((f, element)) = form {
        let v = view.clone();
        on(&f.kind, "change", move |_| {
            if let Some(f) = &v.form {
                draw_fields(f);
            }
        });
        let v = view.clone();
        on(&element, "submit", move |ev| {
            ev.prevent_default();
            spawn(Box::pin(create(v.clone())));
        });
    }
    let v = view.clone();
    on_action(&root, move |action, id| match Action::parse(action, id) {
        Some(Action::Test(id)) => spawn(Box::pin(act(v.clone(), id, Change::Test))),
        Some(Action::Toggle(id)) => spawn(Box::pin(act(v.clone(), id, Change::Toggle))),
        Some(Action::Delete(id)) => spawn(Box::pin(act(v.clone(), id, Change::Delete))),
        Some(Action::Replay(id)) => replay_form(&v, &id),
        Some(Action::Letters(id)) => spawn(Box::pin(show_letters(v.clone(), id))),
        Some(Action::SendLettersAgain(id)) => spawn(Box::pin(send_letters_again(v.clone(), id))),
        Some(Action::Stored) => v.shown.set_text_content(None),
        None => {}
    });
    spawn(Box::pin(load(view)));
}

fn build_form(root: &Element) -> (Form, Element) {
    let name = h("input")
        .id("sink-name")
        .attr("type", "text")
        .attr("required", "")
        .el();
    let kind = h("select")
        .id("sink-kind")
        .children(
            SinkKind::ALL
                .iter()
                .map(|k| h("option").attr("value", k.as_str()).text(k.label()).el()),
        )
        .el();
    let url = h("input")
        .id("sink-url")
        .attr("type", "text")
        .attr("required", "")
        .attr("inputmode", "url")
        .attr("aria-describedby", "sink-url-hint")
        .el();
    let format = h("select")
        .id("sink-format")
        .children(Format::ALL.iter().map(|f| {
            h("option")
                .attr("value", f.as_str())
                .text(format_label(*f))
                .el()
        }))
        .el();
    let streams: Vec<(Stream, Element)> = Stream::ALL
        .iter()
        .map(|s| {
            let b = h("input")
                .attr("type", "checkbox")
                .id(&format!("sink-stream-{}", s.as_str()))
                .attr("value", s.as_str())
                .attr("checked", "")
                .el();
            (*s, b)
        })
        .collect();
    let extra = h("div").el();
    let error = h("p")
        .class("snc-error")
        .attr("role", "alert")
        .hidden()
        .el();
    let element = h("form")
        .class("sink-form")
        .attr("aria-labelledby", "sink-form-title")
        .child(h("h3").id("sink-form-title").text("Add a sink"))
        .child(h("label").attr("for", "sink-name").text("Name"))
        .child(name.clone())
        .child(h("label").attr("for", "sink-kind").text("Receiver"))
        .child(kind.clone())
        .child(h("label").attr("for", "sink-url").text("URL"))
        .child(url.clone())
        .child(h("p").id("sink-url-hint").class("snc-hint").text(
            "The receiver's https address, such as https://hec.example.com:8088/services/collector/event.",
        ))
        .child(
            h("fieldset").child(h("legend").text("Send")).children(streams.iter().map(|(s, b)| {
                h("div")
                    .class("snc-option")
                    .child(b.clone())
                    .child(
                        h("label")
                            .attr("for", &format!("sink-stream-{}", s.as_str()))
                            .text(&format!(" {}", s.as_str())),
                    )
                    .el()
            })),
        )
        .child(h("label").attr("for", "sink-format").text("Format"))
        .child(format.clone())
        .child(extra.clone())
        .child(h("button").attr("type", "submit").text("Add sink"))
        .child(error.clone())
        .el();
    let _ = root.append_child(&element);
    let form = Form {
        name: input(&name),
        kind: kind.unchecked_into(),
        url: input(&url),
        format: format.unchecked_into(),
        streams: streams.iter().map(|(s, b)| (*s, input(b))).collect(),
        extra,
        error,
    };
    draw_fields(&form);
    (form, element)
}

/// The chosen kind's own fields.
fn draw_fields(f: &Form) {
    f.extra.set_text_content(None);
    let Some(kind) = SinkKind::parse(&f.kind.value()) else {
        return;
    };
    for (name, label, secret) in kind_fields(kind) {
        let id = format!("sink-{name}");
        let _ = f
            .extra
            .append_child(&h("label").attr("for", &id).text(label).el());
        let _ = f.extra.append_child(
            &h("input")
                .id(&id)
                .attr("name", name)
                .attr("type", if *secret { "password" } else { "text" })
                .attr("autocomplete", "off")
                .attr("required", "")
                .el(),
        );
    }
}

async fn create(view: Rc<View>) -> Result<JsValue, JsValue> {
    let Some(f) = &view.form else {
        return Ok(JsValue::UNDEFINED);
    };
    crate::dom::hide(&f.error);
    let body = js_sys::Object::new();
    let set = |k: &str, v: JsValue| {
        let _ = js_sys::Reflect::set(&body, &JsValue::from_str(k), &v);
    };
    set("name", f.name.value().trim().into());
    set("kind", f.kind.value().into());
    set("url", f.url.value().trim().into());
    set("format", f.format.value().into());
    let streams = js_sys::Array::new();
    for (s, b) in &f.streams {
        if b.checked() {
            streams.push(&JsValue::from_str(s.as_str()));
        }
    }
    set("streams", streams.into());
    if let Ok(inputs) = f.extra.query_selector_all("input") {
        for i in 0..inputs.length() {
            if let Some(i) = inputs
                .item(i)
                .and_then(|n| n.dyn_into::<HtmlInputElement>().ok())
            {
                set(&i.name(), i.value().trim().into());
            }
        }
    }
    let text = js_sys::JSON::stringify(&body)
        .ok()
        .and_then(|s| s.as_string());
    let answer = view
        .client
        .call(ApiMethod::Post, "/sinks", text.as_deref())
        .await;
    // A webhook's secret is shown only now: read it even from an answer
    // that does not decode whole.
    let created = answer.map(|a| match a.decode::<CreatedSink>() {
        Ok(c) => (c.info.name, c.secret.map(|s| s.expose().to_string())),
        Err(_) => {
            let o = crate::js::Obj(&a.json);
            (o.text("name"), o.str("secret"))
        }
    });
    let (created_name, created_secret) = match created {
        Ok(c) => c,
        Err(p) => {
            super::show_refusal(&f.error, &p);
            return Ok(JsValue::UNDEFINED);
        }
    };
    f.name.set_value("");
    f.url.set_value("");
    f.kind.set_selected_index(0);
    f.format.set_selected_index(0);
    for (_, b) in &f.streams {
        b.set_checked(true);
    }
    draw_fields(f);
    view.note
        .set_text_content(Some(&format!("{created_name} added.")));
    if let Some(secret) = &created_secret {
        let value = h("input")
            .id("sink-secret")
            .attr("type", "text")
            .attr("readonly", "")
            .el();
        input(&value).set_value(secret);
        view.shown.set_text_content(None);
        let _ = view.shown.append_child(
            &h("div")
                .class("snc-alert")
                .child(h("p").text(
                    "The webhook's signing secret: give it to the receiver now, it is not shown again.",
                ))
                .child(h("label").attr("for", "sink-secret").text("Signing secret"))
                .child(value.clone())
                .child(button("I have stored it").action("stored", ""))
                .el(),
        );
        let value = input(&value);
        let _ = value.focus();
        value.select();
    }
    load(view).await
}

/// A change to one sink, and what really came of it.
enum Change {
    Test,
    Toggle,
    Delete,
}

async fn act(view: Rc<View>, id: String, change: Change) -> Result<JsValue, JsValue> {
    let Some(s) = view.sinks.borrow().iter().find(|s| s.id == id).cloned() else {
        return Ok(JsValue::UNDEFINED);
    };
    let path = format!("/sinks/{}", encode(&s.id));
    let enabling = s.state == SinkState::Disabled;
    let (method, path, body) = match change {
        Change::Test => (ApiMethod::Post, format!("{path}/test"), None),
        Change::Toggle => {
            let to = if enabling { "active" } else { "disabled" };
            (
                ApiMethod::Patch,
                path,
                Some(format!("{{\"state\":\"{to}\"}}")),
            )
        }
        Change::Delete => (ApiMethod::Delete, path, None),
    };
    let said = match view.client.call(method, &path, body.as_deref()).await {
        Ok(answer) => match change {
            Change::Test => {
                let message = crate::js::Obj(&answer.json).text("message");
                format!("{}: {message}.", s.name)
            }
            Change::Toggle if enabling => format!("{} enabled.", s.name),
            Change::Toggle => format!("{} disabled.", s.name),
            Change::Delete => format!("{} deleted.", s.name),
        },
        Err(p) => format!("{}: {}", s.name, problem_text(&p)),
    };
    view.note.set_text_content(Some(&said));
    load(view).await
}

fn replay_form(view: &Rc<View>, id: &str) {
    let Some(s) = view.sinks.borrow().iter().find(|s| s.id == id).cloned() else {
        return;
    };
    let row = format!("tr[data-sink=\"{}\"] td.actions", encode(&s.id));
    let Ok(Some(cell)) = view.table.query_selector(&row) else {
        return;
    };
    let from_id = format!("rp-from-{}", s.id);
    let to_id = format!("rp-to-{}", s.id);
    let from = h("input")
        .id(&from_id)
        .attr("type", "datetime-local")
        .attr("required", "")
        .el();
    let to = h("input")
        .id(&to_id)
        .attr("type", "datetime-local")
        .attr("required", "")
        .el();
    let form = h("form")
        .class("replay")
        .attr("aria-label", &format!("Replay to {}", s.name))
        .child(h("label").attr("for", &from_id).text("From (UTC)"))
        .child(from.clone())
        .child(h("label").attr("for", &to_id).text("To (UTC)"))
        .child(to.clone())
        .child(h("button").attr("type", "submit").text("Send again"))
        .el();
    let v = view.clone();
    let (from_input, to_input) = (input(&from), input(&to));
    on(&form, "submit", move |ev| {
        ev.prevent_default();
        let body = format!(
            "{{\"from\":\"{}:00Z\",\"to\":\"{}:00Z\"}}",
            from_input.value(),
            to_input.value()
        );
        spawn(Box::pin(replay(v.clone(), s.clone(), body)));
    });
    let _ = cell.append_child(&form);
    focus(&from);
}

async fn replay(view: Rc<View>, s: SinkInfo, body: String) -> Result<JsValue, JsValue> {
    let path = format!("/sinks/{}/replay", encode(&s.id));
    let said = match view.client.call(ApiMethod::Post, &path, Some(&body)).await {
        Ok(_) => format!("Replay to {} queued.", s.name),
        Err(p) => format!("{}: {}", s.name, problem_text(&p)),
    };
    view.note.set_text_content(Some(&said));
    load(view).await
}

/// A sink's dead letters, newest first, in their own section; the focus
/// moves to its heading. An admin may send them again from there.
async fn show_letters(view: Rc<View>, id: String) -> Result<JsValue, JsValue> {
    let Some(s) = view.sinks.borrow().iter().find(|s| s.id == id).cloned() else {
        return Ok(JsValue::UNDEFINED);
    };
    let path = format!("/sinks/{}/dead_letters", encode(&s.id));
    let list: DeadLetterList = match view.client.fetch(&path).await {
        Ok(l) => l,
        Err(p) => {
            view.note
                .set_text_content(Some(&format!("{}: {}", s.name, problem_text(&p))));
            return Ok(JsValue::UNDEFINED);
        }
    };
    let admin = view.caller == Caller::Admin;
    let mut columns = vec!["Refused at", "Connection", "Stream", "Item", "Status"];
    if admin {
        columns.push("Receiver's reason");
    }
    let rows = list.dead_letters.iter().map(|l| {
        let mut row = h("tr").children([
            cell(&l.at),
            cell(&l.connection_id),
            cell(l.stream.as_str()),
            cell(&l.item_id),
            cell(&l.status.to_string()),
        ]);
        if admin {
            row = row.child(cell(l.reason.as_deref().unwrap_or("")));
        }
        row.el()
    });
    let n = list.dead_letters.len();
    let title_id = format!("dl-title-{}", s.id);
    let title = h("h3")
        .id(&title_id)
        .attr("tabindex", "-1")
        .text(&format!("Dead letters of {}", s.name))
        .el();
    let mut said = format!(
        "{n} item{} the receiver refused on its own while it took the others, kept so the rest could flow.",
        if n == 1 { "" } else { "s" }
    );
    if list.dropped > 0 {
        said.push_str(&format!(
            " {} older ones were dropped past the 1,000 a sink keeps.",
            list.dropped
        ));
    }
    if admin && n > 0 {
        said.push_str(
            " Once the receiver is mended, send them again: what it takes leaves this list.",
        );
    }
    let mut section = vec![
        title.clone(),
        h("p").text(&said).el(),
        h("table")
            .class("events")
            .child(h("caption").text(&format!("{n} dead letters")))
            .child(head(&columns))
            .child(h("tbody").children(rows))
            .el(),
    ];
    if admin && n > 0 {
        section.push(
            button("Send them again")
                .attr(
                    "aria-label",
                    &format!("Send the dead letters of {} again", s.name),
                )
                .action("letters-again", &s.id)
                .el(),
        );
    }
    view.letters.set_text_content(None);
    let _ = view.letters.set_attribute("aria-labelledby", &title_id);
    for part in section {
        let _ = view.letters.append_child(&part);
    }
    let _ = view.letters.remove_attribute("hidden");
    focus(&title);
    Ok(JsValue::UNDEFINED)
}

async fn send_letters_again(view: Rc<View>, id: String) -> Result<JsValue, JsValue> {
    let Some(s) = view.sinks.borrow().iter().find(|s| s.id == id).cloned() else {
        return Ok(JsValue::UNDEFINED);
    };
    let path = format!("/sinks/{}/dead_letters/replay", encode(&s.id));
    let said = match view.client.call(ApiMethod::Post, &path, Some("{}")).await {
        Ok(_) => format!(
            "The dead letters of {} are sent again at each connection's next step; what the receiver takes leaves the list.",
            s.name
        ),
        Err(p) => format!("{}: {}", s.name, problem_text(&p)),
    };
    view.note.set_text_content(Some(&said));
    load(view).await
}

async fn load(view: Rc<View>) -> Result<JsValue, JsValue> {
    let list: SinkList = match view.client.fetch("/sinks").await {
        Ok(l) => l,
        Err(p) => {
            super::caption(&view.table, &p.detail);
            return Ok(JsValue::UNDEFINED);
        }
    };
    let admin = view.caller == Caller::Admin;
    let mut columns = vec![
        "Sink",
        "State",
        "Delivered",
        "Pending",
        "Dead letters",
        "Last success",
        "Last error",
    ];
    if admin {
        columns.push("Actions");
    }
    let rows = list.sinks.iter().map(|s| {
        let streams: Vec<&str> = s.streams.iter().map(|x| x.as_str()).collect();
        let detail = format!(
            "{} · {} · {} · {}",
            s.kind.label(),
            streams.join(", "),
            s.format.as_str(),
            s.url
        );
        let last_error = s.last_error.as_ref().map_or(String::new(), |e| {
            format!(
                "{}: {} {}",
                e.at,
                e.status.map(|n| n.to_string()).unwrap_or_default(),
                e.message.as_deref().unwrap_or("")
            )
        });
        let mut row = h("tr").attr("data-sink", &s.id).children([
            h("td")
                .child(h("strong").text(&s.name))
                .child(h("br"))
                .child(h("span").class("small").text(&detail))
                .el(),
            h("td")
                .attr(
                    "data-state",
                    if s.state == SinkState::Active {
                        "ok"
                    } else {
                        "error"
                    },
                )
                .text(s.state.as_str())
                .el(),
            cell(&s.delivered.to_string()),
            cell(&s.pending.to_string()),
            letters_cell(s),
            cell(s.last_success_at.as_deref().unwrap_or("not yet")),
            cell(&last_error),
        ]);
        if admin {
            let act = |label: &str, action: &str, class: &str| {
                button(label)
                    .class(class)
                    .attr("aria-label", &format!("{label} {}", s.name))
                    .action(action, &s.id)
                    .el()
            };
            let toggle = if s.state == SinkState::Disabled {
                "Enable"
            } else {
                "Disable"
            };
            row = row.child(h("td").class("actions").children([
                act("Test", "test", "secondary"),
                act(toggle, "toggle", "secondary"),
                act("Replay", "replay", "secondary"),
                act("Delete", "delete", "danger"),
            ]));
        }
        row.el()
    });
    let body = h("tbody").children(rows).el();
    let n = list.sinks.len();
    view.table.set_text_content(None);
    for part in [
        h("caption")
            .text(&format!("{n} sink{}", if n == 1 { "" } else { "s" }))
            .el(),
        head(&columns),
        body,
    ] {
        let _ = view.table.append_child(&part);
    }
    *view.sinks.borrow_mut() = list.sinks;
    Ok(JsValue::UNDEFINED)
}

/// The count, and a way to see them when there are any.
fn letters_cell(s: &SinkInfo) -> Element {
    let mut td = h("td").text(&s.dead_letters.to_string());
    if s.dead_letters > 0 || s.dead_letters_dropped > 0 {
        td = td.child(h("br")).child(
            button("Show")
                .class("secondary")
                .attr(
                    "aria-label",
                    &format!("Show the dead letters of {}", s.name),
                )
                .action("letters", &s.id),
        );
    }
    td.el()
}
