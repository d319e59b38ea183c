//! The audit log: changes and refused credentials, newest first, older
//! entries on demand. Needs the read or admin scope.

use std::cell::RefCell;
use std::rc::Rc;

use snc_core::api::access::{Actor, ActorKind, AuditEntry, AuditPage};
use wasm_bindgen::prelude::*;
use web_sys::Element;

use super::{button, cell, client, encode, h, head, live, on, problem_text};
use crate::api::ApiClient;
use crate::js::spawn;

/// Which page to read.
#[derive(Clone, Copy)]
enum Page {
    /// From the newest entry, replacing what is shown.
    Newest,
    /// The page after the last one shown.
    Older,
}

struct View {
    client: Rc<ApiClient>,
    body: Element,
    more: Element,
    note: Element,
    /// Where the next older page starts, and how many entries are shown.
    cursor: RefCell<Option<String>>,
    shown: RefCell<usize>,
}

#[wasm_bindgen(js_name = mountAudit)]
pub fn mount_audit(root: Element, options: JsValue) {
    let body = h("tbody").el();
    let more = button("Older entries").class("secondary").hidden().el();
    let again = button("Refresh the audit log").class("secondary").el();
    let note = live();
    let table = h("table")
        .class("events audit")
        .child(h("caption").text("Changes and refused credentials, newest first"))
        .child(head(&[
            "When", "Who", "Action", "Target", "Outcome", "Address",
        ]))
        .child(body.clone())
        .el();
    for part in [
        h("h2")
            .id("audit-title")
            .attr("tabindex", "-1")
            .class("section-title")
            .text("Audit log")
            .el(),
        again.clone(),
        note.clone(),
        table,
        more.clone(),
    ] {
        let _ = root.append_child(&part);
    }
    let view = Rc::new(View {
        client: client(&options),
        body,
        more: more.clone(),
        note,
        cursor: RefCell::new(None),
        shown: RefCell::new(0),
    });
    let v = view.clone();
    on(&more, "click", move |_| {
        spawn(Box::pin(load(v.clone(), Page::Older)))
    });
    let v = view.clone();
    on(&again, "click", move |_| {
        spawn(Box::pin(load(v.clone(), Page::Newest)))
    });
    spawn(Box::pin(load(view, Page::Newest)));
}

fn who(a: &Actor) -> String {
    match a.kind {
        ActorKind::AdminToken => "admin token".into(),
        kind => format!(
            "{} ({})",
            a.name.as_deref().or(a.id.as_deref()).unwrap_or("unknown"),
            kind.as_str()
        ),
    }
}

fn row(e: &AuditEntry) -> Element {
    h("tr")
        .attr("data-outcome", &e.outcome)
        .children([
            cell(&e.at),
            cell(&who(&e.actor)),
            cell(&e.action),
            cell(e.target.as_deref().unwrap_or("")),
            cell(&e.outcome),
            cell(e.ip.as_deref().unwrap_or("")),
        ])
        .el()
}

async fn load(view: Rc<View>, page: Page) -> Result<JsValue, JsValue> {
    let mut path = "/audit?limit=50".to_string();
    if let (Page::Older, Some(c)) = (page, view.cursor.borrow().as_ref()) {
        path.push_str(&format!("&cursor={}", encode(c)));
    }
    let answer: AuditPage = match view.client.fetch(&path).await {
        Ok(a) => a,
        Err(p) => {
            view.note.set_text_content(Some(&problem_text(&p)));
            return Ok(JsValue::UNDEFINED);
        }
    };
    if let Page::Newest = page {
        view.body.set_text_content(None);
        *view.shown.borrow_mut() = 0;
    }
    for e in &answer.entries {
        let _ = view.body.append_child(&row(e));
    }
    let shown = {
        let mut n = view.shown.borrow_mut();
        *n += answer.entries.len();
        *n
    };
    let more = answer.next_cursor.is_some();
    *view.cursor.borrow_mut() = answer.next_cursor;
    if more {
        crate::dom::show(&view.more);
    } else {
        crate::dom::hide(&view.more);
    }
    let plural = if shown == 1 { "entry" } else { "entries" };
    let rest = if more { ", older ones on demand" } else { "" };
    view.note
        .set_text_content(Some(&format!("{shown} {plural} shown{rest}.")));
    Ok(JsValue::UNDEFINED)
}
