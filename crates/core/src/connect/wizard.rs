//! The connect wizard as a state machine with no I/O: its steps, the fields
//! each step shows for each method, the moves between steps, which problem
//! sends the admin back to which step, and how the status step follows the
//! backfill (and retries a failed read). The page sends `Msg`s and performs
//! the `Effect`s `update` answers with; `view` says what to draw.

use serde::Serialize;

use crate::api::connection::Connection;
use crate::api::settings::PageSettings;
use crate::connect::input::{check_field, AuthMethod, CredentialField};
use crate::problem::{FieldError, Problem};
use crate::servicenow::instance_url::HostPolicy;

pub use crate::problem::CONNECTOR_UNREACHABLE;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Name,
    Method,
    /// User, password and instance (only the instance for client credentials).
    Basic,
    Oauth,
    Connect,
    Status,
}

impl Step {
    pub fn title(self, method: AuthMethod) -> &'static str {
        match (self, method) {
            (Step::Basic, AuthMethod::ClientCredentials) => "Instance",
            (Step::Name, _) => "Name the connection",
            (Step::Method, _) => "How to connect",
            (Step::Basic, _) => "Basic details",
            (Step::Oauth, _) => "OAuth details",
            (Step::Connect, _) => "Connect",
            (Step::Status, _) => "Status",
        }
    }

    /// The fields this step shows for `method`, in order.
    pub fn fields(self, method: AuthMethod) -> &'static [&'static str] {
        match (self, method) {
            (Step::Name, _) => &["name"],
            (Step::Basic, AuthMethod::ClientCredentials) => &["instance_url"],
            (Step::Basic, _) => &["username", "password", "instance_url"],
            (Step::Oauth, _) => &["client_id", "client_secret"],
            _ => &[],
        }
    }
}

/// The steps a method goes through: legacy basic has no OAuth step.
pub fn steps(method: AuthMethod) -> Vec<Step> {
    let all = [
        Step::Name,
        Step::Method,
        Step::Basic,
        Step::Oauth,
        Step::Connect,
        Step::Status,
    ];
    all.into_iter()
        .filter(|s| *s != Step::Oauth || method != AuthMethod::Basic)
        .collect()
}

/// Where a problem sends the admin: the step holding the fields it is about.
pub fn step_for(code: &str, method: AuthMethod) -> Option<Step> {
    let credentials = if method == AuthMethod::ClientCredentials {
        Step::Oauth
    } else {
        Step::Basic
    };
    match code {
        "credentials_rejected" | "not_admin" => Some(credentials),
        "instance_url_forbidden"
        | "instance_unreachable"
        | "instance_hibernating"
        | "not_servicenow" => Some(Step::Basic),
        _ => None,
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Msg {
    Input {
        field: String,
        value: String,
    },
    ChooseMethod(AuthMethod),
    /// The form's submit: Next, Connect, or Connect another.
    Submit,
    Back,
    /// The deployment's settings arrived: its instance-URL policy and backfill
    /// length. The first step needs neither, so the page draws it before.
    Settings(Box<PageSettings>),
    Connected(Box<Connection>),
    ConnectFailed(Problem),
    /// A progress read of connection `id` came back. Reads of a connection
    /// the wizard has moved on from are ignored.
    Polled {
        id: String,
        answer: Result<Box<Connection>, Problem>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Draw `view()` again (a new step).
    Render,
    /// Show these next to their fields; focus the first.
    FieldErrors(Vec<FieldError>),
    /// `POST /connections` with this body (holds the password: send it, never keep it).
    Connect(ConnectBody),
    /// The step's alert: the problem as the API said it.
    Problem(Problem),
    /// Read `GET /connections/{id}` again after this long.
    Poll { id: String, after_ms: u64 },
    /// A sentence for the live region.
    Announce(String),
}

pub struct Wizard {
    step: Step,
    method: AuthMethod,
    /// What was typed, by field. A short list: a map would cost the page
    /// kilobytes of code for six entries.
    values: Vec<(String, String)>,
    connection: Option<Connection>,
    policy: HostPolicy,
    backfill_days: i64,
    poll_failures: u32,
    /// A connect was sent and has not answered yet.
    connecting: bool,
}

impl Wizard {
    pub fn new(policy: HostPolicy, backfill_days: i64) -> Wizard {
        Wizard {
            step: Step::Name,
            method: AuthMethod::Oauth,
            values: Vec::new(),
            connection: None,
            policy,
            backfill_days,
            poll_failures: 0,
            connecting: false,
        }
    }

    pub fn step(&self) -> Step {
        self.step
    }

    pub fn method(&self) -> AuthMethod {
        self.method
    }

    pub fn value(&self, field: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.as_str())
    }

    /// The instance-URL policy fields are checked against.
    pub fn policy(&self) -> &HostPolicy {
        &self.policy
    }

    pub fn backfill_days(&self) -> i64 {
        self.backfill_days
    }

    /// The connection made, on the status step.
    pub fn connection(&self) -> Option<&Connection> {
        self.connection
            .as_ref()
            .filter(|_| self.step == Step::Status)
    }

    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::Input { field, value } => {
                self.values.retain(|(k, _)| *k != field);
                self.values.push((field, value));
                Vec::new()
            }
            Msg::ChooseMethod(m) => {
                self.method = m;
                Vec::new()
            }
            Msg::Settings(settings) => {
                self.policy = settings.host_policy();
                self.backfill_days = settings.backfill_days;
                // Only texts that name the days change; no step moves, and
                // a connect under way is not drawn over.
                match self.step {
                    Step::Connect if self.connecting => Vec::new(),
                    Step::Connect | Step::Status => vec![Effect::Render],
                    _ => Vec::new(),
                }
            }
            Msg::Back => {
                let all = steps(self.method);
                match all.iter().position(|s| *s == self.step) {
                    Some(i) if i > 0 && self.step != Step::Status => {
                        self.step = all[i - 1];
                        vec![Effect::Render]
                    }
                    _ => Vec::new(),
                }
            }
            Msg::Submit => self.submit(),
            Msg::Connected(c) => {
                self.connecting = false;
                // Sent once; not kept a moment longer.
                self.values
                    .retain(|(k, _)| k != "password" && k != "client_secret");
                let id = c.id.clone();
                let done = c.backfill.done;
                self.connection = Some(*c);
                self.step = Step::Status;
                self.poll_failures = 0;
                let mut out = vec![Effect::Render];
                if !done {
                    out.push(Effect::Poll {
                        id,
                        after_ms: 1_000,
                    });
                }
                out
            }
            Msg::ConnectFailed(p) => {
                self.connecting = false;
                self.problem(p)
            }
            Msg::Polled { id, answer } => self.polled(&id, answer),
        }
    }

    fn submit(&mut self) -> Vec<Effect> {
        match self.step {
            Step::Status => {
                self.values.clear();
                self.connection = None;
                self.step = Step::Name;
                vec![Effect::Render]
            }
            // One connect at a time: a second press while it runs does nothing.
            Step::Connect if self.connecting => Vec::new(),
            Step::Connect => {
                self.connecting = true;
                vec![Effect::Connect(self.request())]
            }
            step => {
                let errors: Vec<FieldError> = step
                    .fields(self.method)
                    .iter()
                    .filter_map(|f| check_field(f, self.value(f).unwrap_or(""), &self.policy).err())
                    .collect();
                if !errors.is_empty() {
                    return vec![Effect::FieldErrors(errors)];
                }
                let all = steps(self.method);
                if let Some(i) = all.iter().position(|s| *s == step) {
                    self.step = all[(i + 1).min(all.len() - 1)];
                }
                vec![Effect::Render]
            }
        }
    }

    /// The connect request: the method's fields only.
    fn request(&self) -> ConnectBody {
        let text = |f: &str| self.value(f).unwrap_or("").to_string();
        ConnectBody {
            name: text("name"),
            instance_url: text("instance_url"),
            method: self.method,
            credentials: self
                .method
                .fields()
                .iter()
                .map(|f| (*f, text(f.as_str())))
                .collect(),
        }
    }

    /// A refused connect: field errors go to their fields' step, a problem
    /// about the instance or credentials to the step that holds them, the
    /// connector being unreachable nowhere (the admin's input is fine).
    fn problem(&mut self, p: Problem) -> Vec<Effect> {
        let mut out = Vec::new();
        if let Some(first) = p.errors.first() {
            let holder = steps(self.method)
                .into_iter()
                .find(|s| s.fields(self.method).contains(&first.field.as_str()));
            if let Some(s) = holder {
                if s != self.step {
                    self.step = s;
                    out.push(Effect::Render);
                }
            }
            out.push(Effect::FieldErrors(p.errors.clone()));
            return out;
        }
        if let Some(s) = step_for(&p.code, self.method) {
            if s != self.step {
                self.step = s;
                out.push(Effect::Render);
            }
        }
        out.push(Effect::Problem(p));
        out
    }

    /// A progress read: shown, and read again until the backfill is in; a
    /// failed read is tried again after 2, 4, 8 … 30 s, and said so.
    fn polled(&mut self, asked: &str, answer: Result<Box<Connection>, Problem>) -> Vec<Effect> {
        let Some(id) = self.connection.as_ref().map(|c| c.id.clone()) else {
            return Vec::new();
        };
        if self.step != Step::Status || id != asked {
            return Vec::new();
        }
        match answer {
            Ok(c) if c.id == id => {
                let mut out = Vec::new();
                if self.poll_failures > 0 {
                    out.push(Effect::Announce("The connector answers again.".into()));
                }
                self.poll_failures = 0;
                let done = c.backfill.done;
                self.connection = Some(*c);
                out.push(Effect::Render);
                if !done {
                    out.push(Effect::Poll {
                        id,
                        after_ms: 1_000,
                    });
                }
                out
            }
            Ok(_) => Vec::new(),
            Err(p) => {
                self.poll_failures += 1;
                let wait = 2u64.saturating_pow(self.poll_failures).min(30);
                let why = if p.code == CONNECTOR_UNREACHABLE {
                    "The connector could not be reached.".to_string()
                } else {
                    format!("The progress could not be read ({}).", p.title)
                };
                vec![
                    Effect::Announce(format!("{why} Trying again in {wait} s.")),
                    Effect::Poll {
                        id,
                        after_ms: wait * 1_000,
                    },
                ]
            }
        }
    }

    /// What the page draws for the current step.
    pub fn view(&self) -> StepView {
        let all = steps(self.method);
        let at = all.iter().position(|s| *s == self.step).unwrap_or(0);
        let days = self.backfill_days;
        StepView {
            step: self.step,
            title: self.step.title(self.method),
            progress: all.iter().map(|s| s.title(self.method)).collect(),
            current: at,
            fields: self.step.fields(self.method).to_vec(),
            busy: self.step == Step::Connect && self.connecting,
            next: match self.step {
                Step::Connect => "Connect",
                Step::Status => "Connect another",
                _ => "Next",
            },
            back: at > 0 && self.step != Step::Status,
            summary: match self.step {
                Step::Connect => {
                    let mut rows = vec![("Name", self.value("name").unwrap_or("").to_string())];
                    rows.push(("Method", self.method.label().to_string()));
                    if self.method != AuthMethod::ClientCredentials {
                        rows.push(("User ID", self.value("username").unwrap_or("").to_string()));
                    }
                    rows.push((
                        "Instance",
                        self.value("instance_url").unwrap_or("").to_string(),
                    ));
                    if self.method != AuthMethod::Basic {
                        rows.push((
                            "Client ID",
                            self.value("client_id").unwrap_or("").to_string(),
                        ));
                    }
                    rows
                }
                _ => Vec::new(),
            },
            status: self
                .connection
                .as_ref()
                .filter(|_| self.step == Step::Status)
                .map(|c| {
                    if c.backfill.done {
                        format!("The last {days} days are in.")
                    } else {
                        format!("Collecting the last {days} days of events…")
                    }
                }),
        }
    }
}

/// The body of `POST /connections` the wizard sends. Typed rather than JSON
/// so the browser module needs no JSON serializer: the page writes it out
/// from `members()`.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectBody {
    pub name: String,
    pub instance_url: String,
    pub method: AuthMethod,
    /// The method's credential fields only, in the wizard's order.
    pub credentials: Vec<(CredentialField, String)>,
}

impl ConnectBody {
    /// Every member as (name, value), as the API names them.
    pub fn members(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![
            ("name", self.name.as_str()),
            ("instance_url", self.instance_url.as_str()),
            ("method", self.method.as_str()),
        ];
        out.extend(
            self.credentials
                .iter()
                .map(|(f, v)| (f.as_str(), v.as_str())),
        );
        out
    }

    pub fn get(&self, member: &str) -> Option<&str> {
        self.members()
            .into_iter()
            .find(|(k, _)| *k == member)
            .map(|(_, v)| v)
    }
}

/// Holds a password or client secret: its Debug names the members only.
impl std::fmt::Debug for ConnectBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.members().into_iter().map(|(k, _)| k).collect();
        write!(
            f,
            "ConnectBody {{ members: {names:?}, values: [redacted] }}"
        )
    }
}

/// One step as the page draws it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepView {
    pub step: Step,
    pub title: &'static str,
    pub progress: Vec<&'static str>,
    pub current: usize,
    pub fields: Vec<&'static str>,
    pub next: &'static str,
    /// A connect is under way: the submit button stays disabled.
    pub busy: bool,
    pub back: bool,
    pub summary: Vec<(&'static str, String)>,
    /// The status step's line about the backfill.
    pub status: Option<String>,
}

#[cfg(test)]
mod tests;
