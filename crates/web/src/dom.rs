//! Building DOM nodes. Text only: nothing from the network or the admin is
//! ever parsed as HTML.

use wasm_bindgen::JsCast;
use web_sys::{Document, Element, HtmlElement};

pub fn document() -> Option<Document> {
    web_sys::window()?.document()
}

/// `<tag attr=value …>text</tag>`; an attribute whose value is `None` is left
/// out, so optional ones read as data.
pub fn el(tag: &str, attrs: &[(&str, Option<&str>)], text: Option<&str>) -> Element {
    // Only fails without a document, which a mounted module always has.
    let Some(node) = document().and_then(|d| d.create_element(tag).ok()) else {
        return js_sys::Object::new().unchecked_into();
    };
    for (k, v) in attrs {
        if let Some(v) = v {
            let _ = node.set_attribute(k, v);
        }
    }
    if let Some(t) = text {
        node.set_text_content(Some(t));
    }
    node
}

pub fn append(parent: &Element, children: &[Element]) {
    for c in children {
        let _ = parent.append_child(c);
    }
}

pub fn replace(parent: &Element, children: &[Element]) {
    parent.set_text_content(None);
    append(parent, children);
}

pub fn show(node: &Element) {
    if let Some(h) = node.dyn_ref::<HtmlElement>() {
        h.set_hidden(false);
    }
}

pub fn hide(node: &Element) {
    if let Some(h) = node.dyn_ref::<HtmlElement>() {
        h.set_hidden(true);
    }
}

pub fn is_shown(node: &Element) -> bool {
    node.dyn_ref::<HtmlElement>().is_some_and(|h| !h.hidden())
}

pub fn focus(node: &Element) {
    if let Some(h) = node.dyn_ref::<HtmlElement>() {
        let _ = h.focus();
    }
}
