//! API keys: create with scopes and an expiry (the key shown once, with a
//! copy button), list, revoke after a confirmation. Needs the admin scope.

use std::cell::RefCell;
use std::rc::Rc;

use serde::Serialize;
use snc_core::api::access::{CreatedKey, KeyInfo, KeyList, Scope};
use snc_core::api::routes::ApiMethod;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlInputElement, HtmlSelectElement};

use super::{button, cell, client, focus, h, head, json, live, on, on_action, problem_text};
use crate::api::ApiClient;
use crate::js::spawn;

/// What a click in the view asks for.
enum Action {
    Revoke(String),
    RevokeForGood(String),
    Keep(String),
    Copy,
    Stored,
}

impl Action {
    fn parse(action: &str, id: &str) -> Option<Action> {
        Some(match action {
            "revoke" => Action::Revoke(id.into()),
            "revoke-yes" => Action::RevokeForGood(id.into()),
            "revoke-no" => Action::Keep(id.into()),
            "copy" => Action::Copy,
            "stored" => Action::Stored,
            _ => return None,
        })
    }
}

fn scope_label(s: Scope) -> &'static str {
    match s {
        Scope::Admin => "admin: everything",
        Scope::Read => "read: every GET but the keys",
        Scope::Connect => "connect: the connect wizard and minting tickets",
    }
}

struct View {
    client: Rc<ApiClient>,
    note: Element,
    name: HtmlInputElement,
    scopes: Vec<(Scope, HtmlInputElement)>,
    expiry: HtmlSelectElement,
    error: Element,
    shown: Element,
    table: Element,
    keys: RefCell<Vec<KeyInfo>>,
}

#[derive(Serialize)]
struct NewKey<'a> {
    name: String,
    scopes: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
}

fn input(el: &Element) -> HtmlInputElement {
    el.clone().unchecked_into()
}

#[wasm_bindgen(js_name = mountKeys)]
pub fn mount_keys(root: Element, options: JsValue) {
    let name = h("input")
        .id("key-name")
        .attr("type", "text")
        .attr("required", "")
        .attr("maxlength", "64")
        .attr("aria-describedby", "key-name-hint")
        .el();
    let boxes: Vec<(Scope, Element)> = Scope::ALL
        .into_iter()
        .map(|s| {
            let mut b = h("input")
                .attr("type", "checkbox")
                .id(&format!("key-scope-{}", s.as_str()))
                .attr("value", s.as_str());
            if s == Scope::Read {
                b = b.attr("checked", "");
            }
            (s, b.el())
        })
        .collect();
    let expiry = h("select")
        .id("key-expiry")
        .children(
            [
                ("", "never"),
                ("30", "in 30 days"),
                ("90", "in 90 days"),
                ("365", "in a year"),
            ]
            .into_iter()
            .map(|(v, t)| h("option").attr("value", v).text(t).el()),
        )
        .el();
    let error = h("p")
        .class("snc-error")
        .attr("role", "alert")
        .hidden()
        .el();
    let form = h("form")
        .class("key-form")
        .attr("aria-labelledby", "key-form-title")
        .child(h("h3").id("key-form-title").text("Create an API key"))
        .child(h("label").attr("for", "key-name").text("Name"))
        .child(name.clone())
        .child(
            h("p")
                .id("key-name-hint")
                .class("snc-hint")
                .text("After the script or portal that will use it."),
        )
        .child(
            h("fieldset")
                .child(h("legend").text("Scopes"))
                .children(boxes.iter().map(|(s, b)| {
                    h("div")
                        .class("snc-option")
                        .child(b.clone())
                        .child(
                            h("label")
                                .attr("for", &format!("key-scope-{}", s.as_str()))
                                .text(&format!(" {}", scope_label(*s))),
                        )
                        .el()
                })),
        )
        .child(h("label").attr("for", "key-expiry").text("Expires"))
        .child(expiry.clone())
        .child(h("button").attr("type", "submit").text("Create key"))
        .child(error.clone())
        .el();
    let view = Rc::new(View {
        client: client(&options),
        note: live(),
        name: input(&name),
        scopes: boxes.iter().map(|(s, b)| (*s, input(b))).collect(),
        expiry: expiry.unchecked_into(),
        error,
        shown: h("div").class("key-shown").el(),
        table: h("table").class("events keys").el(),
        keys: RefCell::new(Vec::new()),
    });
    for part in [
        h("h2")
            .id("keys-title")
            .attr("tabindex", "-1")
            .class("section-title")
            .text("API keys")
            .el(),
        view.note.clone(),
        form.clone(),
        view.shown.clone(),
        view.table.clone(),
    ] {
        let _ = root.append_child(&part);
    }
    let v = view.clone();
    on(&form, "submit", move |ev| {
        ev.prevent_default();
        spawn(Box::pin(create(v.clone())));
    });
    let v = view.clone();
    on_action(&root, move |action, id| match Action::parse(action, id) {
        Some(Action::Revoke(id)) => confirm(&v, &id),
        Some(Action::RevokeForGood(id)) => spawn(Box::pin(revoke(v.clone(), id))),
        Some(Action::Keep(id)) => {
            let asked = format!("tr[data-key=\"{}\"] [role=alertdialog]", super::encode(&id));
            if let Ok(Some(b)) = v.table.query_selector(&asked) {
                b.remove();
            }
        }
        Some(Action::Copy) => spawn(Box::pin(copy(v.clone()))),
        Some(Action::Stored) => {
            v.shown.set_text_content(None);
            let _ = v.name.focus();
        }
        None => {}
    });
    spawn(Box::pin(load(view)));
}

/// An RFC 3339 time `days` from now, to the second.
fn days_from_now(days: f64) -> String {
    let at = js_sys::Date::new_0();
    at.set_time(at.get_time() + days * 86_400_000.0);
    let iso = String::from(at.to_iso_string());
    match iso.split_once('.') {
        Some((seconds, _)) => format!("{seconds}Z"),
        None => iso,
    }
}

async fn create(view: Rc<View>) -> Result<JsValue, JsValue> {
    crate::dom::hide(&view.error);
    let days = view.expiry.value();
    let body = NewKey {
        name: view.name.value().trim().to_string(),
        scopes: view
            .scopes
            .iter()
            .filter(|(_, b)| b.checked())
            .map(|(s, _)| s.as_str())
            .collect(),
        expires_at: days.parse::<f64>().ok().map(days_from_now),
    };
    let answer = match json(&body) {
        Some(text) => {
            view.client
                .call(ApiMethod::Post, "/keys", Some(&text))
                .await
        }
        None => return Ok(JsValue::UNDEFINED),
    };
    // The key is shown only now: read it even from an answer that does not
    // decode whole.
    let created = answer.map(|a| match a.decode::<CreatedKey>() {
        Ok(c) => (c.info.name, c.key.expose().to_string()),
        Err(_) => {
            let o = crate::js::Obj(&a.json);
            (o.text("name"), o.text("key"))
        }
    });
    let (created_name, created_key) = match created {
        Ok(c) => c,
        Err(p) => {
            super::show_refusal(&view.error, &p);
            return Ok(JsValue::UNDEFINED);
        }
    };
    let value = h("input")
        .id("key-value")
        .attr("type", "text")
        .attr("readonly", "")
        .el();
    input(&value).set_value(&created_key);
    view.shown.set_text_content(None);
    let _ = view.shown.append_child(
        &h("div")
            .class("snc-alert")
            .child(
                h("p")
                    .child(h("strong").text(&format!("Key \"{created_name}\" created. ")))
                    .child(h("span").text("Copy it now: it is not shown again.")),
            )
            .child(h("label").attr("for", "key-value").text("The key"))
            .child(value.clone())
            .child(button("Copy key").class("secondary").action("copy", ""))
            .child(
                h("span")
                    .id("key-copied")
                    .attr("role", "status")
                    .attr("aria-live", "polite"),
            )
            .child(button("I have stored it").action("stored", ""))
            .el(),
    );
    view.name.set_value("");
    view.expiry.set_value("");
    for (s, b) in &view.scopes {
        b.set_checked(*s == Scope::Read);
    }
    let value = input(&value);
    let _ = value.focus();
    value.select();
    load(view).await
}

async fn copy(view: Rc<View>) -> Result<JsValue, JsValue> {
    let Ok(Some(value)) = view.shown.query_selector("#key-value") else {
        return Ok(JsValue::UNDEFINED);
    };
    let value = input(&value);
    let said = match write_clipboard(&value.value()).await {
        Ok(()) => " Copied.",
        Err(_) => {
            value.select();
            " Select and copy it by hand."
        }
    };
    if let Ok(Some(s)) = view.shown.query_selector("#key-copied") {
        s.set_text_content(Some(said));
    }
    Ok(JsValue::UNDEFINED)
}

/// `navigator.clipboard.writeText`, which the page may be refused.
async fn write_clipboard(text: &str) -> Result<(), JsValue> {
    let navigator = web_sys::window().ok_or(JsValue::NULL)?.navigator();
    let clipboard = js_sys::Reflect::get(&navigator, &"clipboard".into())?;
    let write: js_sys::Function =
        js_sys::Reflect::get(&clipboard, &"writeText".into())?.dyn_into()?;
    let promise: js_sys::Promise = write.call1(&clipboard, &text.into())?.dyn_into()?;
    wasm_bindgen_futures::JsFuture::from(promise).await?;
    Ok(())
}

fn confirm(view: &View, id: &str) {
    let Some(key) = view.keys.borrow().iter().find(|k| k.id == id).cloned() else {
        return;
    };
    let row = format!("tr[data-key=\"{}\"] td.actions", super::encode(&key.id));
    let Ok(Some(cell)) = view.table.query_selector(&row) else {
        return;
    };
    let no = button("Keep it")
        .class("secondary")
        .action("revoke-no", &key.id)
        .el();
    let label = format!("rv-{}", key.id);
    let _ = cell.append_child(
        &h("div")
            .attr("role", "alertdialog")
            .attr("aria-labelledby", &label)
            .class("confirm")
            .child(h("p").id(&label).text(&format!(
                "Revoke {}? Whatever uses it is refused at once.",
                key.name
            )))
            .child(
                button("Revoke for good")
                    .class("danger")
                    .action("revoke-yes", &key.id),
            )
            .child(no.clone())
            .el(),
    );
    focus(&no);
}

async fn revoke(view: Rc<View>, id: String) -> Result<JsValue, JsValue> {
    let name = view
        .keys
        .borrow()
        .iter()
        .find(|k| k.id == id)
        .map(|k| k.name.clone())
        .unwrap_or_default();
    let path = format!("/keys/{}", super::encode(&id));
    match view.client.call(ApiMethod::Delete, &path, None).await {
        Ok(_) => {
            view.note
                .set_text_content(Some(&format!("{name} revoked.")));
            load(view).await
        }
        Err(p) => {
            view.note.set_text_content(Some(&problem_text(&p)));
            Ok(JsValue::UNDEFINED)
        }
    }
}

async fn load(view: Rc<View>) -> Result<JsValue, JsValue> {
    let list: KeyList = match view.client.fetch("/keys").await {
        Ok(l) => l,
        Err(p) => {
            super::caption(&view.table, &p.detail);
            return Ok(JsValue::UNDEFINED);
        }
    };
    let n = list.keys.len();
    let rows = list.keys.iter().map(|k| {
        let scopes: Vec<&str> = Scope::ALL
            .into_iter()
            .filter(|s| k.scopes.has(*s))
            .map(Scope::as_str)
            .collect();
        h("tr")
            .attr("data-key", &k.id)
            .children([
                cell(&k.name),
                cell(&scopes.join(", ")),
                cell(&k.created_at),
                cell(k.expires_at.as_deref().unwrap_or("never")),
                cell(k.last_used_at.as_deref().unwrap_or("not yet")),
                h("td")
                    .class("actions")
                    .child(
                        button("Revoke")
                            .class("secondary")
                            .attr("aria-label", &format!("Revoke {}", k.name))
                            .action("revoke", &k.id),
                    )
                    .el(),
            ])
            .el()
    });
    let body = h("tbody").children(rows).el();
    view.table.set_text_content(None);
    for part in [
        h("caption")
            .text(&format!("{n} key{}", if n == 1 { "" } else { "s" }))
            .el(),
        head(&[
            "Name",
            "Scopes",
            "Created",
            "Expires",
            "Last used",
            "Actions",
        ]),
        body,
    ] {
        let _ = view.table.append_child(&part);
    }
    *view.keys.borrow_mut() = list.keys;
    Ok(JsValue::UNDEFINED)
}
