//! The connect wizard in the page. Core's `Wizard` decides everything (steps,
//! fields, checks, where a problem sends the admin, polling); this module
//! turns DOM events into its `Msg`s, performs its `Effect`s (API calls,
//! timers) and draws its `view()`. JavaScript only calls `mountWizard`.

mod view;

use std::cell::RefCell;
use std::rc::Rc;

use snc_core::api::connection::Connection;
use snc_core::api::routes::ApiMethod;
use snc_core::api::settings::PageSettings;
use snc_core::connect::input::{check_field, AuthMethod};
use snc_core::connect::wizard::{ConnectBody, Effect, Msg, Step, Wizard};
use snc_core::problem::{FieldError, Problem};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlInputElement, Node};

use crate::api::{ApiClient, Credential};
use crate::dom::{append, el, focus, hide, replace, show};
use crate::js::{problem_to_js, spawn};

/// The page's callbacks: the embed turns them into DOM events.
struct Hooks {
    on_connected: Option<js_sys::Function>,
    on_error: Option<js_sys::Function>,
}

/// The parts of the form that stay while steps change.
struct Parts {
    form: Element,
    title: Element,
    progress: Element,
    body: Element,
    live: Element,
    alert: Element,
    back: Element,
    next: Element,
}

/// One drawn field: its name, input and error line.
struct Field {
    name: &'static str,
    input: HtmlInputElement,
    error: Element,
}

struct Controller {
    machine: Wizard,
    client: Rc<ApiClient>,
    hooks: Rc<Hooks>,
    parts: Parts,
    fields: Vec<Field>,
    /// The step last drawn: a new read of the same status step updates the
    /// body only, so focus and announcements stay where they are.
    drawn: Option<Step>,
}

type Shared = Rc<RefCell<Controller>>;

fn option(options: &JsValue, name: &str) -> JsValue {
    js_sys::Reflect::get(options, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// Mounts the wizard in `root` (an element or a shadow root). `options`:
/// `{apiBase, token, onConnected(connection), onError(problem)}`, where
/// `token` is a string, null, or a function `(renew) => ticket`. Resolves
/// once the first step accepts input; `/settings` is read meanwhile (the
/// first step needs none of it) and applied when it comes.
#[wasm_bindgen(js_name = mountWizard)]
pub fn mount_wizard(root: Node, options: JsValue) -> js_sys::Promise {
    crate::js::promise(Box::pin(async move {
        let shared = mount(&root, &options)?;
        spawn(Box::pin(read_settings(shared)));
        Ok(JsValue::UNDEFINED)
    }))
}

fn mount(root: &Node, options: &JsValue) -> Result<Shared, JsValue> {
    let base = option(options, "apiBase").as_string().unwrap_or_default();
    let client = Rc::new(ApiClient::new(
        &base,
        Credential::from_js(&option(options, "token")),
    ));
    let hooks = Rc::new(Hooks {
        on_connected: option(options, "onConnected").dyn_into().ok(),
        on_error: option(options, "onError").dyn_into().ok(),
    });
    // Until /settings answers: the strictest policy (ServiceNow's domains,
    // no loopback) and the default backfill.
    let shared: Shared = Rc::new(RefCell::new(Controller {
        machine: Wizard::new(snc_core::servicenow::instance_url::HostPolicy::default(), 7),
        client,
        hooks,
        parts: build(root)?,
        fields: Vec::new(),
        drawn: None,
    }));
    listen(&shared)?;
    shared.borrow_mut().render();
    Ok(shared)
}

async fn read_settings(shared: Shared) -> Result<JsValue, JsValue> {
    let client = shared.borrow().client.clone();
    match client.get::<PageSettings>("/settings").await {
        Ok(s) => dispatch(&shared, Msg::Settings(Box::new(s))),
        // The worker checks everything again; the page keeps its defaults
        // and says why.
        Err(p) => shared.borrow().show_problem(&p),
    }
    Ok(JsValue::UNDEFINED)
}

fn build(root: &Node) -> Result<Parts, JsValue> {
    let form = el(
        "form",
        &[
            ("class", Some("snc-wizard")),
            ("novalidate", Some("")),
            ("aria-labelledby", Some("snc-step-title")),
        ],
        None,
    );
    let parts = Parts {
        title: el(
            "h2",
            &[("id", Some("snc-step-title")), ("tabindex", Some("-1"))],
            None,
        ),
        progress: el(
            "ol",
            &[("class", Some("snc-steps")), ("aria-label", Some("Steps"))],
            None,
        ),
        body: el("div", &[("class", Some("snc-body"))], None),
        live: el(
            "p",
            &[
                ("class", Some("snc-live")),
                ("role", Some("status")),
                ("aria-live", Some("polite")),
            ],
            None,
        ),
        alert: el(
            "div",
            &[
                ("class", Some("snc-alert")),
                ("role", Some("alert")),
                ("hidden", Some("")),
            ],
            None,
        ),
        back: el(
            "button",
            &[("type", Some("button")), ("class", Some("secondary"))],
            Some("Back"),
        ),
        next: el("button", &[("type", Some("submit"))], Some("Next")),
        form,
    };
    let nav = el("div", &[("class", Some("snc-nav"))], None);
    append(&nav, &[parts.back.clone(), parts.next.clone()]);
    append(
        &parts.form,
        &[
            parts.progress.clone(),
            parts.title.clone(),
            parts.alert.clone(),
            parts.body.clone(),
            parts.live.clone(),
            nav,
        ],
    );
    root.append_child(&parts.form)?;
    Ok(parts)
}

/// The form's listeners, delegated: they live as long as the page, and a
/// new step's fields need none of their own.
fn listen(shared: &Shared) -> Result<(), JsValue> {
    let form = shared.borrow().parts.form.clone();
    let on = |event: &str, handler: Box<dyn FnMut(web_sys::Event)>| -> Result<(), JsValue> {
        let closure = Closure::wrap(handler);
        form.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref())?;
        closure.forget();
        Ok(())
    };
    let s = shared.clone();
    on(
        "submit",
        Box::new(move |ev| {
            ev.prevent_default();
            submit(&s);
        }),
    )?;
    let s = shared.clone();
    on(
        "input",
        Box::new(move |ev| {
            let Some(input) = target_input(&ev) else {
                return;
            };
            let field = input.name();
            if field == "method" {
                return;
            }
            dispatch(
                &s,
                Msg::Input {
                    field: field.clone(),
                    value: input.value(),
                },
            );
            if input.get_attribute("aria-invalid").as_deref() == Some("true") {
                s.borrow().check(&field);
            }
        }),
    )?;
    let s = shared.clone();
    on(
        "change",
        Box::new(move |ev| {
            let Some(input) = target_input(&ev) else {
                return;
            };
            if input.name() == "method" && input.checked() {
                if let Some(m) = AuthMethod::parse(&input.value()) {
                    dispatch(&s, Msg::ChooseMethod(m));
                }
            }
        }),
    )?;
    let s = shared.clone();
    on(
        "focusout",
        Box::new(move |ev| {
            let Some(input) = target_input(&ev) else {
                return;
            };
            // A step drawn over its focused field fires this while the
            // controller is busy drawing: nothing to check then.
            if input.name() != "method" && !input.value().is_empty() {
                if let Ok(c) = s.try_borrow() {
                    c.check(&input.name());
                }
            }
        }),
    )?;
    let s = shared.clone();
    let back = shared.borrow().parts.back.clone();
    let closure = Closure::<dyn FnMut()>::new(move || dispatch(&s, Msg::Back));
    back.add_event_listener_with_callback("click", closure.as_ref().unchecked_ref())?;
    closure.forget();
    Ok(())
}

fn target_input(ev: &web_sys::Event) -> Option<HtmlInputElement> {
    ev.target()?.dyn_into().ok()
}

fn submit(shared: &Shared) {
    if shared.borrow().parts.next.has_attribute("disabled") {
        return;
    }
    // What the browser filled in without an input event counts too.
    let typed: Vec<(String, String)> = shared
        .borrow()
        .fields
        .iter()
        .map(|f| (f.name.to_string(), f.input.value()))
        .collect();
    for (field, value) in typed {
        dispatch(shared, Msg::Input { field, value });
    }
    dispatch(shared, Msg::Submit);
}

fn dispatch(shared: &Shared, msg: Msg) {
    // An event fired from inside a redraw (a removed field's focusout)
    // finds the controller busy: it is dropped rather than re-entered.
    let Ok(mut controller) = shared.try_borrow_mut() else {
        return;
    };
    let effects = controller.machine.update(msg);
    drop(controller);
    for effect in effects {
        match effect {
            Effect::Render => shared.borrow_mut().render(),
            Effect::FieldErrors(errors) => shared.borrow().show_field_errors(&errors),
            Effect::Problem(p) => shared.borrow().show_problem(&p),
            Effect::Announce(text) => shared.borrow().parts.live.set_text_content(Some(&text)),
            Effect::Connect(body) => spawn(Box::pin(connect(shared.clone(), body))),
            Effect::Poll { id, after_ms } => spawn(Box::pin(poll(shared.clone(), id, after_ms))),
        }
    }
}

/// The connect body as JSON, written by the browser: no serializer in the page.
fn body_json(body: &ConnectBody) -> Option<String> {
    let o = js_sys::Object::new();
    for (k, v) in body.members() {
        js_sys::Reflect::set(&o, &JsValue::from_str(k), &JsValue::from_str(v)).ok()?;
    }
    js_sys::JSON::stringify(&o).ok()?.as_string()
}

async fn connect(shared: Shared, body: ConnectBody) -> Result<JsValue, JsValue> {
    let (client, hooks) = {
        let c = shared.borrow();
        let _ = c.parts.next.set_attribute("disabled", "");
        c.parts
            .live
            .set_text_content(Some("Connecting… signing in and checking the instance."));
        (c.client.clone(), c.hooks.clone())
    };
    let outcome = match body_json(&body) {
        Some(json) => {
            client
                .call(ApiMethod::Post, "/connections", Some(&json))
                .await
        }
        None => Err(Problem::connector_unreachable(
            "the request could not be written",
        )),
    };
    drop(body);
    {
        let c = shared.borrow();
        c.parts.live.set_text_content(None);
        let _ = c.parts.next.remove_attribute("disabled");
    }
    let made = outcome.and_then(|answer| answer.parse::<Connection>().map(|c| (c, answer.json)));
    match made {
        Ok((connection, json)) => {
            dispatch(&shared, Msg::Connected(Box::new(connection)));
            if let Some(f) = &hooks.on_connected {
                let _ = f.call1(&JsValue::NULL, &json);
            }
        }
        Err(problem) => {
            if let Some(f) = &hooks.on_error {
                let _ = f.call1(&JsValue::NULL, &problem_to_js(&problem));
            }
            dispatch(&shared, Msg::ConnectFailed(problem));
        }
    }
    Ok(JsValue::UNDEFINED)
}

async fn sleep(ms: u64) {
    let wait = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(
                &resolve,
                i32::try_from(ms).unwrap_or(i32::MAX),
            );
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(wait).await;
}

async fn poll(shared: Shared, id: String, after_ms: u64) -> Result<JsValue, JsValue> {
    sleep(after_ms).await;
    let client = shared.borrow().client.clone();
    let path = format!(
        "/connections/{}",
        String::from(js_sys::encode_uri_component(&id))
    );
    let answer = client.get::<Connection>(&path).await;
    dispatch(
        &shared,
        Msg::Polled {
            id,
            answer: answer.map(Box::new),
        },
    );
    Ok(JsValue::UNDEFINED)
}

impl Controller {
    fn render(&mut self) {
        let view = self.machine.view();
        let same = self.drawn == Some(view.step);
        self.drawn = Some(view.step);
        let p = &self.parts;
        if same && view.step == Step::Status {
            if let Some(c) = self.machine.connection() {
                replace(
                    &p.body,
                    &[view::status(c, view.status.as_deref().unwrap_or(""))],
                );
            }
            return;
        }
        let steps: Vec<Element> = view
            .progress
            .iter()
            .enumerate()
            .map(|(n, title)| {
                let class = if n == view.current {
                    "current"
                } else if n < view.current {
                    "done"
                } else {
                    ""
                };
                el(
                    "li",
                    &[
                        ("class", Some(class)),
                        ("aria-current", (n == view.current).then_some("step")),
                    ],
                    Some(title),
                )
            })
            .collect();
        replace(&p.progress, &steps);
        p.title.set_text_content(Some(view.title));
        hide(&p.alert);
        p.alert.set_text_content(None);
        p.live.set_text_content(None);
        if view.back {
            show(&p.back);
        } else {
            hide(&p.back);
        }
        p.next.set_text_content(Some(view.next));
        if view.busy {
            let _ = p.next.set_attribute("disabled", "");
        } else {
            let _ = p.next.remove_attribute("disabled");
        }
        self.fields.clear();
        let body: Vec<Element> = match view.step {
            Step::Method => vec![view::methods(self.machine.method())],
            Step::Connect => view::summary(&view, self.machine.backfill_days()),
            Step::Status => self
                .machine
                .connection()
                .map(|c| view::status(c, view.status.as_deref().unwrap_or("")))
                .into_iter()
                .collect(),
            _ => view
                .fields
                .iter()
                .map(|name| {
                    let (block, input, error) =
                        view::field(name, self.machine.value(name).unwrap_or(""));
                    if let Ok(input) = input.dyn_into::<HtmlInputElement>() {
                        self.fields.push(Field { name, input, error });
                    }
                    block
                })
                .collect(),
        };
        replace(&self.parts.body, &body);
        focus(&self.parts.title);
    }

    /// Checks one field with core's rules, as the worker will; shows or
    /// clears its error.
    fn check(&self, name: &str) {
        let Some(f) = self.fields.iter().find(|f| f.name == name) else {
            return;
        };
        let message = check_field(name, &f.input.value(), self.machine.policy())
            .err()
            .map(|e| e.message);
        show_error(f, message.as_deref());
    }

    fn show_field_errors(&self, errors: &[FieldError]) {
        for f in &self.fields {
            let message = errors
                .iter()
                .find(|e| e.field == f.name)
                .map(|e| e.message.as_str());
            show_error(f, message);
        }
        let first = errors
            .first()
            .and_then(|e| self.fields.iter().find(|f| f.name == e.field));
        if let Some(f) = first {
            let _ = f.input.focus();
        }
    }

    fn show_problem(&self, p: &Problem) {
        let alert = &self.parts.alert;
        replace(
            alert,
            &[
                el("strong", &[], Some(&p.title)),
                el("p", &[], Some(&p.detail)),
                el(
                    "p",
                    &[("class", Some("snc-code"))],
                    Some(&format!("Code: {}", p.code)),
                ),
            ],
        );
        // Announced by its role; focus stays on the step's title or field.
        show(alert);
    }
}

fn show_error(f: &Field, message: Option<&str>) {
    let hint = format!("snc-{}-hint", f.name);
    match message {
        Some(m) => {
            f.error.set_text_content(Some(m));
            show(&f.error);
            let _ = f.input.set_attribute("aria-invalid", "true");
            let _ = f
                .input
                .set_attribute("aria-describedby", &format!("snc-{}-error {hint}", f.name));
        }
        None => {
            f.error.set_text_content(None);
            hide(&f.error);
            let _ = f.input.remove_attribute("aria-invalid");
            let _ = f.input.set_attribute("aria-describedby", &hint);
        }
    }
}
