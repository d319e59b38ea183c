//! The hosted page's views and their addresses. Each view has a hash route
//! (`/#/alerts/al_…`), so `/` stays the page's only HTML path and a link to
//! an alert or a connection can be shared. The page asks this module which
//! view an address shows to the caller, and which views to offer.

use super::access::PageSections;
use crate::watch::posture::Severity;

/// One view of the hosted page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Open alerts by severity and each connection's health: first after
    /// sign-in, as a security console opens.
    Overview,
    Connect,
    Connections,
    Alerts,
    Keys,
    Sinks,
    Audit,
}

/// Which of the browser's two modules draws a view: the page's own (the
/// connect module, loaded with the page) or the admin views' (loaded on
/// demand, the first time such a view is shown).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewModule {
    Page,
    Admin,
}

impl View {
    /// In the order the page's navigation lists them.
    pub const ALL: [View; 7] = [
        View::Overview,
        View::Connect,
        View::Connections,
        View::Alerts,
        View::Sinks,
        View::Keys,
        View::Audit,
    ];

    /// The route's first segment, and the view's name in the page's script.
    pub fn as_str(self) -> &'static str {
        match self {
            View::Overview => "overview",
            View::Connect => "connect",
            View::Connections => "connections",
            View::Alerts => "alerts",
            View::Keys => "keys",
            View::Sinks => "sinks",
            View::Audit => "audit",
        }
    }

    /// The navigation's label, and the view's heading.
    pub fn label(self) -> &'static str {
        match self {
            View::Overview => "Overview",
            View::Connect => "Connect ServiceNow",
            View::Connections => "Connections",
            View::Alerts => "Alerts",
            View::Keys => "API keys",
            View::Sinks => "Forwarding",
            View::Audit => "Audit log",
        }
    }

    pub fn module(self) -> ViewModule {
        match self {
            View::Overview | View::Connect => ViewModule::Page,
            _ => ViewModule::Admin,
        }
    }

    /// Whether a view holds one item an address can name.
    fn takes_id(self) -> bool {
        matches!(self, View::Connections | View::Alerts)
    }

    pub fn allowed(self, sections: &PageSections) -> bool {
        match self {
            View::Overview | View::Connections | View::Alerts => sections.connections,
            View::Connect => sections.wizard,
            View::Keys => sections.keys,
            View::Sinks => sections.sinks,
            View::Audit => sections.audit,
        }
    }
}

/// What an address shows: a view, and the item it names (a connection's or
/// an alert's id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageRoute {
    pub view: View,
    pub id: Option<String>,
}

/// The longest id an address may name; ids are `c_…`, `al_…` and the like.
const ID_MAX: usize = 64;

fn id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= ID_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl PageRoute {
    /// The route `hash` (`location.hash`: `#/alerts/al_…`) names, if any.
    /// An empty hash and `#/` are the overview.
    pub fn parse(hash: &str) -> Option<PageRoute> {
        let path = hash.strip_prefix('#').unwrap_or(hash);
        let path = path.strip_prefix('/').unwrap_or(path);
        let path = path.strip_suffix('/').unwrap_or(path);
        if path.is_empty() {
            return Some(PageRoute {
                view: View::Overview,
                id: None,
            });
        }
        let (first, rest) = match path.split_once('/') {
            Some((first, rest)) => (first, Some(rest)),
            None => (path, None),
        };
        let view = View::ALL
            .into_iter()
            .find(|v| v.as_str() == first && *v != View::Overview)?;
        match rest {
            None => Some(PageRoute { view, id: None }),
            Some(id) if view.takes_id() && id_ok(id) => Some(PageRoute {
                view,
                id: Some(id.to_string()),
            }),
            Some(_) => None,
        }
    }

    /// The address of this route, as the page writes it.
    pub fn hash(&self) -> String {
        let mut out = String::from("#/");
        if self.view != View::Overview {
            out.push_str(self.view.as_str());
        }
        if let Some(id) = &self.id {
            out.push('/');
            out.push_str(id);
        }
        out
    }

    /// What the page shows the caller for `hash`: the route it names when the
    /// caller may see it, otherwise the first view the caller may see (the
    /// overview, or the wizard for a connect-only key). `None` when the
    /// caller may see nothing at all.
    pub fn shown(hash: &str, sections: &PageSections) -> Option<PageRoute> {
        if let Some(route) = PageRoute::parse(hash) {
            if route.view.allowed(sections) {
                return Some(route);
            }
        }
        let view = PageRoute::nav(sections).into_iter().next()?;
        Some(PageRoute { view, id: None })
    }

    /// The views the caller may see, in the navigation's order.
    pub fn nav(sections: &PageSections) -> Vec<View> {
        View::ALL
            .into_iter()
            .filter(|v| v.allowed(sections))
            .collect()
    }
}

/// The overview's count of open alerts by severity, from one page of the
/// alerts list (`more`: the list had more than that page).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertTally {
    counts: [u64; 4],
    pub more: bool,
}

impl AlertTally {
    /// An alert of `severity` as the API writes it; an unknown one is left
    /// out rather than guessed.
    pub fn add(&mut self, severity: &str) {
        if let Some(i) =
            Severity::parse(severity).and_then(|s| Severity::ALL.iter().position(|v| *v == s))
        {
            self.counts[i] += 1;
        }
    }

    /// Each severity with its count, most severe first.
    pub fn counts(&self) -> impl Iterator<Item = (Severity, u64)> + '_ {
        Severity::ALL.into_iter().zip(self.counts)
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// A connection's events a day on average over what it holds: `events`
/// stored since `from_ms` (its backfill's start), at `now_ms`; `None` while
/// its backfill runs (what it holds then is not yet what it covers). Less
/// than a day held counts as a day.
pub fn events_per_day(events: u64, backfilled: bool, from_ms: f64, now_ms: f64) -> Option<u64> {
    const DAY_MS: f64 = 86_400_000.0;
    if !backfilled {
        return None;
    }
    let span = now_ms - from_ms;
    if !span.is_finite() || span <= 0.0 {
        return Some(events);
    }
    let days = (span / DAY_MS).max(1.0);
    Some((events as f64 / days).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::access::Scope;

    fn route(view: View, id: Option<&str>) -> Option<PageRoute> {
        Some(PageRoute {
            view,
            id: id.map(String::from),
        })
    }

    #[test]
    fn addresses_name_views_and_items() {
        for empty in ["", "#", "#/", "/"] {
            assert_eq!(
                PageRoute::parse(empty),
                route(View::Overview, None),
                "{empty}"
            );
        }
        assert_eq!(PageRoute::parse("#/alerts"), route(View::Alerts, None));
        assert_eq!(PageRoute::parse("#/alerts/"), route(View::Alerts, None));
        assert_eq!(
            PageRoute::parse("#/alerts/al_0123456789abcdef"),
            route(View::Alerts, Some("al_0123456789abcdef"))
        );
        assert_eq!(
            PageRoute::parse("#/connections/c_x-1"),
            route(View::Connections, Some("c_x-1"))
        );
        assert_eq!(PageRoute::parse("#/connect"), route(View::Connect, None));
        // Unknown views, ids where a view takes none, and ids no item has.
        for bad in [
            "#/overview",
            "#/nope",
            "#/keys/k_1",
            "#/alerts/a/b",
            "#/alerts/<img>",
            "#/alerts/%20",
            &format!("#/alerts/{}", "a".repeat(65)),
        ] {
            assert_eq!(PageRoute::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_route_writes_the_address_it_was_read_from() {
        for view in View::ALL {
            let r = PageRoute { view, id: None };
            assert_eq!(PageRoute::parse(&r.hash()), Some(r.clone()));
            if view.takes_id() {
                let r = PageRoute {
                    view,
                    id: Some("al_1".into()),
                };
                assert_eq!(PageRoute::parse(&r.hash()), Some(r));
            }
        }
        assert_eq!(
            PageRoute {
                view: View::Overview,
                id: None
            }
            .hash(),
            "#/"
        );
    }

    #[test]
    fn a_caller_is_shown_only_what_its_scopes_allow() {
        let admin = PageSections::for_scopes(&[Scope::Admin]);
        assert_eq!(PageRoute::nav(&admin), View::ALL.to_vec());
        assert_eq!(PageRoute::shown("#/keys", &admin), route(View::Keys, None));
        assert_eq!(
            PageRoute::shown("#/nope", &admin),
            route(View::Overview, None)
        );

        let read = PageSections::for_scopes(&[Scope::Read]);
        assert!(!PageRoute::nav(&read).contains(&View::Keys));
        assert!(!PageRoute::nav(&read).contains(&View::Connect));
        assert_eq!(
            PageRoute::shown("#/keys", &read),
            route(View::Overview, None)
        );
        assert_eq!(
            PageRoute::shown("#/alerts/al_1", &read),
            route(View::Alerts, Some("al_1"))
        );

        // A connect-only key: the wizard is all it has.
        let connect = PageSections::for_scopes(&[Scope::Connect]);
        assert_eq!(PageRoute::nav(&connect), vec![View::Connect]);
        assert_eq!(PageRoute::shown("", &connect), route(View::Connect, None));
        assert_eq!(
            PageRoute::shown("#/alerts/al_1", &connect),
            route(View::Connect, None)
        );

        assert_eq!(PageRoute::shown("#/", &PageSections::default()), None);
    }

    #[test]
    fn open_alerts_are_counted_by_severity_most_severe_first() {
        let mut t = AlertTally::default();
        for s in ["high", "low", "high", "critical", "bogus", ""] {
            t.add(s);
        }
        let counts: Vec<_> = t.counts().map(|(s, n)| (s.as_str(), n)).collect();
        assert_eq!(
            counts,
            vec![("critical", 1), ("high", 2), ("medium", 0), ("low", 1)]
        );
        assert_eq!(t.total(), 4);
    }

    #[test]
    fn events_a_day_average_over_the_days_held() {
        let day = 86_400_000.0;
        // The 7-day backfill and half a day since: 7,500 events, 1,000 a day.
        assert_eq!(events_per_day(7_500, true, 0.0, 7.5 * day), Some(1_000));
        // Less than a day: one day, not twenty-four.
        assert_eq!(events_per_day(500, true, 0.0, day / 24.0), Some(500));
        // While the backfill runs there is no figure yet.
        assert_eq!(events_per_day(500, false, 0.0, 7.5 * day), None);
        // A clock behind the backfill's start, or no start: the count.
        assert_eq!(events_per_day(42, true, 10.0 * day, day), Some(42));
        assert_eq!(events_per_day(42, true, f64::NAN, day), Some(42));
    }

    #[test]
    fn the_overview_and_wizard_come_with_the_page_and_the_rest_on_demand() {
        assert_eq!(View::Overview.module(), ViewModule::Page);
        assert_eq!(View::Connect.module(), ViewModule::Page);
        for v in [
            View::Connections,
            View::Alerts,
            View::Keys,
            View::Sinks,
            View::Audit,
        ] {
            assert_eq!(v.module(), ViewModule::Admin);
        }
    }
}
