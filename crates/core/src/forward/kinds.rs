//! The names forwarding speaks in: sink kinds, streams, formats and states.

use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str { match self { $($name::$variant => $text),+ } }
            pub fn parse(s: &str) -> Option<$name> { Self::ALL.iter().copied().find(|v| v.as_str() == s) }
        }
    };
}

string_enum!(SinkKind { Webhook = "webhook", SplunkHec = "splunk_hec", Elastic = "elastic", Sentinel = "sentinel" });
string_enum!(Stream { Events = "events", Alerts = "alerts" });
string_enum!(Format { Contract = "contract", Ocsf = "ocsf", Ecs = "ecs" });
string_enum!(SinkState { Active = "active", Failing = "failing", Disabled = "disabled" });
