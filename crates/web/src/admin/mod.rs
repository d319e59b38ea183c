//! The hosted page's views, one module each. They are a second wasm module
//! (`www/pkg/snc_admin*`, this crate built with the `admin` feature instead
//! of `connect`) that the page loads after the wizard accepts input, and only
//! for callers who may read: the connect page's bytes stay the wizard's.
//!
//! Each view is a `mount*` export taking the section to fill and
//! `{apiBase, token}`. Its state lives in one `Rc`; clicks are delegated to
//! the view's root through `data-action`, parsed into the view's own action
//! type, so redrawn rows need no listeners of their own. Answers cross into
//! core's types through serde-wasm-bindgen (bytes matter less here than on
//! the connect page). Text only: nothing from the API is parsed as HTML.

pub mod alerts;
pub mod audit;
pub mod connections;
pub mod details;
pub mod keys;
pub mod sinks;

use std::rc::Rc;

use serde::Serialize;
use snc_core::problem::Problem;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::Element;

use crate::api::{ApiClient, Credential};

/// An element under construction: `h("p").class("x").text("…").el()`.
pub struct H(Element);

pub fn h(tag: &str) -> H {
    H(crate::dom::el(tag, &[], None))
}

impl H {
    pub fn attr(self, name: &str, value: &str) -> H {
        let _ = self.0.set_attribute(name, value);
        self
    }
    pub fn id(self, value: &str) -> H {
        self.attr("id", value)
    }
    pub fn class(self, value: &str) -> H {
        self.attr("class", value)
    }
    pub fn text(self, value: &str) -> H {
        self.0.set_text_content(Some(value));
        self
    }
    pub fn hidden(self) -> H {
        self.attr("hidden", "")
    }
    /// `data-action` (and `data-id`): what a click on it asks its view to do.
    pub fn action(self, action: &str, id: &str) -> H {
        self.attr("data-action", action).attr("data-id", id)
    }
    pub fn child(self, child: impl Into<Element>) -> H {
        let _ = self.0.append_child(&child.into());
        self
    }
    pub fn children(self, children: impl IntoIterator<Item = Element>) -> H {
        for c in children {
            let _ = self.0.append_child(&c);
        }
        self
    }
    pub fn el(self) -> Element {
        self.0
    }
}

impl From<H> for Element {
    fn from(h: H) -> Element {
        h.0
    }
}

pub fn button(label: &str) -> H {
    h("button").attr("type", "button").text(label)
}

/// A polite live region for what an action came to.
pub fn live() -> Element {
    h("p")
        .attr("role", "status")
        .attr("aria-live", "polite")
        .class("snc-live")
        .el()
}

/// A table's head row, one column header per name.
pub fn head(columns: &[&str]) -> Element {
    h("thead")
        .child(
            h("tr").children(
                columns
                    .iter()
                    .map(|c| h("th").attr("scope", "col").text(c).el()),
            ),
        )
        .el()
}

pub fn cell(text: &str) -> Element {
    h("td").text(text).el()
}

/// What a refused call says, for a status line.
pub fn problem_text(p: &Problem) -> String {
    format!("{}: {}", p.title, p.detail)
}

/// A refused create, at its form's error line: each field's message, or the
/// problem when no field is named.
pub fn show_refusal(error: &Element, p: &Problem) {
    let text = if p.errors.is_empty() {
        problem_text(p)
    } else {
        p.errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join(" ")
    };
    error.set_text_content(Some(&text));
    crate::dom::show(error);
}

/// Empties `table` and gives it `text` as its caption (a count, or why the
/// rows could not be read).
pub fn caption(table: &Element, text: &str) {
    table.set_text_content(None);
    let _ = table.append_child(&h("caption").text(text).el());
}

/// Listens for the view's whole life (views are mounted once per page).
pub fn on(target: &Element, event: &str, handler: impl FnMut(web_sys::Event) + 'static) {
    let closure = Closure::<dyn FnMut(web_sys::Event)>::new(handler);
    let _ = target.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref());
    closure.forget();
}

/// Clicks on anything under `root` carrying `data-action`: the handler gets
/// the action and the element's `data-id`.
pub fn on_action(root: &Element, mut handler: impl FnMut(&str, &str) + 'static) {
    on(root, "click", move |ev| {
        let Some(target) = ev.target().and_then(|t| t.dyn_into::<Element>().ok()) else {
            return;
        };
        let Ok(Some(source)) = target.closest("[data-action]") else {
            return;
        };
        let action = source.get_attribute("data-action").unwrap_or_default();
        let id = source.get_attribute("data-id").unwrap_or_default();
        handler(&action, &id);
    });
}

/// The view's API client from `{apiBase, token}`.
pub fn client(options: &JsValue) -> Rc<ApiClient> {
    let get = |k: &str| {
        js_sys::Reflect::get(options, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED)
    };
    Rc::new(ApiClient::new(
        &get("apiBase").as_string().unwrap_or_default(),
        Credential::from_js(&get("token")),
    ))
}

/// A request body as JSON text, written by the browser.
pub fn json<T: Serialize>(value: &T) -> Option<String> {
    let js = value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .ok()?;
    js_sys::JSON::stringify(&js).ok()?.as_string()
}

/// A query-string value.
pub fn encode(value: &str) -> String {
    String::from(js_sys::encode_uri_component(value))
}

pub fn focus(el: &Element) {
    crate::dom::focus(el);
}
