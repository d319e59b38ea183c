//! What is normal for each user, learned from the events the connection
//! stores as the rules see them (each once, a table's in time order), so
//! the 7-day backfill seeds it at connect and each event is judged against
//! what came before it: last week's sign-in from a new country is an alert
//! at connect.
//!
//! Sign-in places (`Places`): per user, the countries and the networks
//! (AS numbers) of their successful sign-ins, each with its sign-ins
//! counted since it was first seen and the day of the last; one unused for
//! `KEEP_DAYS` is forgotten. A country or network is news once the user's history holds at least `MIN_SIGN_INS`
//! sign-ins spanning at least `MIN_DAYS` days; before that the user is
//! still learning and nothing is judged. Bounded, as it is kept in the
//! rules' one state row: `COUNTRIES_KEPT` countries a user (the least used
//! go first) and `USERS_KEPT` users (those with the fewest sign-ins go
//! first, so a flood of throwaway accounts does not push out the history
//! of the people who sign in every day).
//!
//! Last sign-in (`LastSignIn`): per user, the latest successful sign-in
//! the rules have seen, for `KEEP_DAYS`; past that the inventory's
//! `last_login_time` (and what it said before its last change) tells
//! when the account last signed in (`detect`'s dormant account rule).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use snc_ipdata::{Asn, Country};

/// A country unused this long is forgotten; a user too.
pub const KEEP_DAYS: i64 = 30;
/// Sign-ins a user's history needs before a new country is news.
pub const MIN_SIGN_INS: u32 = 5;
/// Days those sign-ins must span (the first and the last counted).
pub const MIN_DAYS: i64 = 2;
pub const COUNTRIES_KEPT: usize = 6;
pub const NETWORKS_KEPT: usize = 6;
pub const USERS_KEPT: usize = 5_000;
/// Countries the instance's own history keeps (the least used go first).
pub const INSTANCE_COUNTRIES_KEPT: usize = 64;
/// Sign-ins the instance's history needs before a country is rare for it.
pub const INSTANCE_MIN_SIGN_INS: u32 = 100;
/// A country is rare for the instance under this share of its sign-ins
/// (percent).
pub const RARE_PERCENT: u32 = 1;

const DAY: i64 = 86_400;

/// One user's sign-in countries and networks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Places {
    /// The first and the last day (Unix days) of the history kept.
    from: i64,
    to: i64,
    /// (country, sign-ins, last day), most used first.
    seen: Vec<(String, u32, i64)>,
    /// (AS number, sign-ins, last day), most used first; empty in a
    /// history saved before networks were kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    nets: Vec<(u32, u32, i64)>,
    /// The first day of the networks' history: a history saved before
    /// networks were kept has none, and its networks are learning (not
    /// every usual network new at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nets_from: Option<i64>,
    /// The latest sign-in: its country, time (Unix seconds) and address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last: Option<(String, i64, String)>,
}

/// Where and when a user last signed in (`Places::last`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LastPlace<'a> {
    pub country: Country,
    pub at: i64,
    pub ip: &'a str,
}

/// A sign-in's country or network against the user's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaceVerdict {
    /// Too little history to judge.
    Learning,
    /// A country of the history.
    Usual,
    /// None of the history's, which is long enough.
    New,
}

impl Places {
    pub fn sign_ins(&self) -> u32 {
        self.seen
            .iter()
            .fold(0u32, |sum, s| sum.saturating_add(s.1))
    }

    /// Days the history spans.
    pub fn days(&self) -> i64 {
        if self.seen.is_empty() {
            0
        } else {
            self.to - self.from + 1
        }
    }

    /// A sign-in from `country` at `at` (Unix seconds), judged against
    /// the history before it.
    pub fn judge(&self, country: Country, at: i64) -> PlaceVerdict {
        let day = at.div_euclid(DAY);
        let usual = self
            .seen
            .iter()
            .any(|s| s.2 > day - KEEP_DAYS && s.0 == country.as_str());
        self.verdict(usual, day)
    }

    /// A sign-in from the network `asn` at `at`, judged against the
    /// networks' history before it (which, like the countries', must be
    /// long enough).
    pub fn judge_network(&self, asn: Asn, at: i64) -> PlaceVerdict {
        let day = at.div_euclid(DAY);
        let kept = || self.nets.iter().filter(|s| s.2 > day - KEEP_DAYS);
        if kept().any(|s| s.0 == asn.0) {
            return PlaceVerdict::Usual;
        }
        let sign_ins = kept().fold(0u32, |sum, s| sum.saturating_add(s.1));
        match self.nets_from {
            Some(from) => verdict(sign_ins, from.max(day - KEEP_DAYS + 1), self.to),
            None => PlaceVerdict::Learning,
        }
    }

    fn verdict(&self, usual: bool, day: i64) -> PlaceVerdict {
        if usual {
            return PlaceVerdict::Usual;
        }
        let sign_ins: u32 = self
            .seen
            .iter()
            .filter(|s| s.2 > day - KEEP_DAYS)
            .map(|s| s.1)
            .sum();
        verdict(sign_ins, self.from.max(day - KEEP_DAYS + 1), self.to)
    }
}

/// New once a history of `sign_ins` from the day `from` to the day `to`
/// is long enough; learning before.
fn verdict(sign_ins: u32, from: i64, to: i64) -> PlaceVerdict {
    if sign_ins >= MIN_SIGN_INS && spans_enough(from, to) {
        PlaceVerdict::New
    } else {
        PlaceVerdict::Learning
    }
}

impl Places {
    /// The latest sign-in learned.
    pub fn last(&self) -> Option<LastPlace<'_>> {
        let (country, at, ip) = self.last.as_ref()?;
        Some(LastPlace {
            country: Country::parse(country)?,
            at: *at,
            ip,
        })
    }

    /// Counts a sign-in from `ip` in `country` (and `network`, when the
    /// data names one) at `at`.
    pub fn learn(&mut self, ip: &str, country: Country, network: Option<Asn>, at: i64) {
        match &mut self.last {
            // Written over in place: most sign-ins come from where the last did.
            Some(last) if last.1 <= at => {
                if last.0 != country.as_str() {
                    last.0 = country.as_str().to_string();
                }
                if last.2 != ip {
                    last.2 = ip.to_string();
                }
                last.1 = at;
            }
            Some(_) => {}
            None => self.last = Some((country.as_str().to_string(), at, ip.to_string())),
        }
        let day = at.div_euclid(DAY);
        keep_recent(&mut self.seen, (&mut self.from, &mut self.to), day);
        count(&mut self.seen, country.as_str(), day, COUNTRIES_KEPT);
        self.nets.retain(|s| s.2 > day - KEEP_DAYS);
        if self.nets.is_empty() {
            self.nets_from = None;
        }
        if let Some(asn) = network {
            let from = self.nets_from.get_or_insert(day);
            *from = (*from).max(day - KEEP_DAYS + 1).min(day);
            count(&mut self.nets, &asn.0, day, NETWORKS_KEPT);
        }
    }

    /// The networks of the history before `at` in words: "AS64500 (5)
    /// and AS64501 (1)" (one unused for `KEEP_DAYS` is not told, though
    /// not yet forgotten).
    pub fn describe_networks(&self, at: i64) -> String {
        let day = at.div_euclid(DAY);
        let parts: Vec<String> = self
            .nets
            .iter()
            .filter(|s| s.2 > day - KEEP_DAYS)
            .map(|(asn, count, _)| format!("AS{asn} ({count})"))
            .collect();
        match parts.as_slice() {
            [] => "no network the IP data names".to_string(),
            [one] => one.clone(),
            [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
        }
    }

    /// The history before `at` in words: "41 sign-ins from US and 2 from
    /// DE over 9 days" (as `judge` sees it: the last `KEEP_DAYS`).
    pub fn describe(&self, at: i64) -> String {
        let day = at.div_euclid(DAY);
        let parts: Vec<String> = self
            .seen
            .iter()
            .filter(|s| s.2 > day - KEEP_DAYS)
            .enumerate()
            .map(|(n, (country, count, _))| match n {
                0 => format!("{count} sign-in{} from {country}", plural(*count)),
                _ => format!("{count} from {country}"),
            })
            .collect();
        let list = match parts.as_slice() {
            [] => "no sign-ins".to_string(),
            [one] => one.clone(),
            [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
        };
        let days = if parts.is_empty() {
            0
        } else {
            self.to - self.from.max(day - KEEP_DAYS + 1) + 1
        };
        format!("{list} over {days} day{}", plural(days as u32))
    }
}

/// A user's latest successful sign-in the rules have seen (Unix seconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSignIn(pub i64);

/// Days without a sign-in after which an account is dormant.
pub const DORMANT_DAYS: i64 = 30;

/// When an account signed in last before a sign-in at `at`, from what the
/// rules saw (`seen`) and what the inventory read: its `last_login_time`
/// and the value that preceded it. A sign-in updates `last_login_time`
/// as it happens, so an inventory value within `SAME_SIGN_IN_SECS` before
/// `at` (or after it) is taken to be this sign-in or a later one.
pub fn sign_in_before(
    at: i64,
    seen: Option<LastSignIn>,
    inventory: [Option<i64>; 2],
) -> Option<i64> {
    let own = seen.map(|s| s.0).filter(|t| *t < at);
    let read = inventory
        .into_iter()
        .flatten()
        .filter(|t| *t < at - SAME_SIGN_IN_SECS);
    own.into_iter().chain(read).max()
}

/// How far before a sign-in's event the instance may have stamped
/// `last_login_time` for it.
pub const SAME_SIGN_IN_SECS: i64 = 300;

/// One user's busiest window of something (attachment downloads) each
/// day, for `KEEP_DAYS`: what a burst of theirs is judged against. A day
/// on which one of their windows raised an alert is spoiled and never
/// counts, so an attack (its first part included) does not teach the rule
/// to let the next one pass.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusiestWindows(Vec<(i64, u32, bool)>);

impl BusiestWindows {
    /// A window of `count` at `at` (Unix seconds): its day keeps the
    /// largest.
    pub fn learn(&mut self, at: i64, count: u32) {
        let d = self.day(at);
        d.1 = d.1.max(count);
    }

    /// The day of `at` raised an alert: it never counts.
    pub fn spoil(&mut self, at: i64) {
        self.day(at).2 = true;
    }

    fn day(&mut self, at: i64) -> &mut (i64, u32, bool) {
        let day = at.div_euclid(DAY);
        self.0.retain(|d| d.0 > day - KEEP_DAYS);
        let at = match self.0.binary_search_by_key(&day, |d| d.0) {
            Ok(i) => i,
            Err(i) => {
                self.0.insert(i, (day, 0, false));
                i
            }
        };
        &mut self.0[at]
    }

    /// The busiest window of the unspoiled days before the day of `at`,
    /// over the last `KEEP_DAYS`; `None` while the first of them is fewer
    /// than `MIN_DAYS` days back (too little to say what is usual).
    pub fn usual(&self, at: i64) -> Option<u32> {
        let day = at.div_euclid(DAY);
        let before = || {
            self.0
                .iter()
                .filter(|d| d.0 < day && d.0 > day - KEEP_DAYS && !d.2)
        };
        let first = before().map(|d| d.0).min()?;
        spans_enough(first, day - 1).then(|| before().map(|d| d.1).max().unwrap_or(0))
    }
}

/// Forgets the countries of `seen` unused for `KEEP_DAYS` before `day`,
/// and moves the history's span (its first and last day) to hold `day`.
fn keep_recent(seen: &mut Vec<(String, u32, i64)>, (from, to): (&mut i64, &mut i64), day: i64) {
    seen.retain(|s| s.2 > day - KEEP_DAYS);
    if seen.is_empty() {
        *from = day;
        *to = day;
    }
    *from = (*from).max(day - KEEP_DAYS + 1).min(day);
    *to = (*to).max(day);
}

/// Counts one more for `key` on `day` in a list of (key, count, last day)
/// kept most used first and at most `keep` long (the least used goes).
fn count<K, Q>(list: &mut Vec<(K, u32, i64)>, key: &Q, day: i64, keep: usize)
where
    K: std::borrow::Borrow<Q> + Ord,
    Q: ToOwned<Owned = K> + PartialEq + ?Sized,
{
    let mut at = match list.iter().position(|s| s.0.borrow() == key) {
        Some(i) => {
            list[i].1 = list[i].1.saturating_add(1);
            list[i].2 = list[i].2.max(day);
            i
        }
        None => {
            if list.len() >= keep {
                list.pop();
            }
            list.push((key.to_owned(), 1, day));
            list.len() - 1
        }
    };
    // Only this entry grew: it moves up to its place (most used first,
    // then by key), the rest stay in order. Cheaper than sorting each time.
    while at > 0 && (list[at - 1].1, &list[at].0) < (list[at].1, &list[at - 1].0) {
        list.swap(at - 1, at);
        at -= 1;
    }
}

/// Whether a history from the day `first` to the day `last` (both
/// counted) is long enough to say what is usual.
fn spans_enough(first: i64, last: i64) -> bool {
    last - first + 1 >= MIN_DAYS
}

fn plural(n: u32) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// What a user's history weighs (what the bound keeps first) and when it
/// was last added to.
pub trait History {
    fn weight(&self) -> u32;
    fn last_day(&self) -> i64;
}

impl History for Places {
    fn weight(&self) -> u32 {
        self.sign_ins()
    }
    fn last_day(&self) -> i64 {
        self.to
    }
}

impl History for LastSignIn {
    fn weight(&self) -> u32 {
        1
    }
    fn last_day(&self) -> i64 {
        self.0.div_euclid(DAY)
    }
}

impl History for BusiestWindows {
    fn weight(&self) -> u32 {
        self.0.iter().fold(0u32, |sum, d| sum.saturating_add(d.1))
    }
    fn last_day(&self) -> i64 {
        self.0.last().map_or(i64::MIN, |d| d.0)
    }
}

/// The countries of every successful sign-in to the instance, each with
/// its recent sign-ins (the counts halve every `KEEP_DAYS`, so they weigh
/// the last 30 to 60 days: a country the instance took up last month is
/// not rare for a year's old counts) and the day of the last; one unused
/// for `KEEP_DAYS` is forgotten.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceCountries {
    from: i64,
    to: i64,
    seen: Vec<(String, u32, i64)>,
    /// The day the counts last halved (or began).
    #[serde(default)]
    halved: i64,
}

/// A country's share of the instance's sign-ins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    pub sign_ins: u32,
    pub of: u32,
}

impl InstanceCountries {
    /// `country`'s share of the sign-ins before `at`, when the history is
    /// long enough (`INSTANCE_MIN_SIGN_INS` over `MIN_DAYS`) and the share
    /// is under `RARE_PERCENT`.
    pub fn rare(&self, country: Country, at: i64) -> Option<Share> {
        let day = at.div_euclid(DAY);
        let kept = || self.seen.iter().filter(|s| s.2 > day - KEEP_DAYS);
        let of: u32 = kept().fold(0u32, |sum, s| sum.saturating_add(s.1));
        let sign_ins = kept().find(|s| s.0 == country.as_str()).map_or(0, |s| s.1);
        let from = self.from.max(day - KEEP_DAYS + 1);
        let long_enough = of >= INSTANCE_MIN_SIGN_INS && spans_enough(from, self.to);
        let rare = u64::from(sign_ins) * 100 < u64::from(of) * u64::from(RARE_PERCENT);
        (long_enough && rare).then_some(Share { sign_ins, of })
    }

    pub fn learn(&mut self, country: Country, at: i64) {
        let day = at.div_euclid(DAY);
        keep_recent(&mut self.seen, (&mut self.from, &mut self.to), day);
        if self.halved == 0 {
            self.halved = day;
        } else if day - self.halved >= KEEP_DAYS {
            for s in &mut self.seen {
                s.1 /= 2;
            }
            self.seen.retain(|s| s.1 > 0);
            self.seen
                .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            self.halved = day;
        }
        count(
            &mut self.seen,
            country.as_str(),
            day,
            INSTANCE_COUNTRIES_KEPT,
        );
    }
}

/// Drops the users unseen for `KEEP_DAYS` before `now`, then, past
/// `keep`, those whose history weighs least (unseen longest first among
/// equals).
pub fn prune<H: History>(users: &mut BTreeMap<String, H>, now: i64, keep: usize) {
    let today = now.div_euclid(DAY);
    users.retain(|_, h| h.last_day() > today - KEEP_DAYS);
    if users.len() > keep {
        let mut order: Vec<(u32, i64, String)> = users
            .iter()
            .map(|(k, h)| (h.weight(), h.last_day(), k.clone()))
            .collect();
        order.sort_unstable();
        for (_, _, user) in order.into_iter().take(users.len() - keep) {
            users.remove(&user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_765_000_000;

    fn c(code: &str) -> Country {
        Country::parse(code).unwrap()
    }

    #[test]
    fn a_new_country_is_news_only_after_enough_history() {
        let mut p = Places::default();
        // Four sign-ins from the US over two days: still learning.
        for i in 0..4 {
            assert_ne!(p.judge(c("US"), T0 + i * 40_000), PlaceVerdict::New);
            p.learn("192.0.2.1", c("US"), None, T0 + i * 40_000);
        }
        assert_eq!(p.judge(c("BR"), T0 + 200_000), PlaceVerdict::Learning);
        p.learn("192.0.2.1", c("US"), None, T0 + 200_000);
        assert_eq!(p.judge(c("US"), T0 + 210_000), PlaceVerdict::Usual);
        assert_eq!(p.judge(c("BR"), T0 + 210_000), PlaceVerdict::New);
        assert_eq!(p.describe(T0 + 210_000), "5 sign-ins from US over 3 days");
        p.learn("192.0.2.1", c("BR"), None, T0 + 210_000);
        assert_eq!(
            p.judge(c("BR"), T0 + 220_000),
            PlaceVerdict::Usual,
            "learned"
        );
        assert_eq!(
            p.describe(T0 + 220_000),
            "5 sign-ins from US and 1 from BR over 3 days"
        );
        // Thirty days after the US was last used, only Brazil (used two
        // days later) is told.
        let mut later = p.clone();
        later.learn("192.0.2.1", c("BR"), None, T0 + 210_000 + 2 * DAY);
        let month = T0 + 200_000 + KEEP_DAYS * DAY;
        let told = later.describe(month);
        assert!(told.starts_with("2 sign-ins from BR over"), "{told}");
        assert!(!told.contains("US"), "{told}");
        // Five sign-ins in one day are not enough: they must span two.
        let mut busy = Places::default();
        for i in 0..10 {
            busy.learn("192.0.2.1", c("US"), None, T0 - T0 % DAY + i * 60);
        }
        assert_eq!(
            busy.judge(c("BR"), T0 - T0 % DAY + 3_600),
            PlaceVerdict::Learning
        );
    }

    #[test]
    fn the_sign_in_before_comes_from_the_rules_or_from_the_inventory() {
        let at = T0;
        // Nothing known: no judgement.
        assert_eq!(sign_in_before(at, None, [None, None]), None);
        // The inventory caught up with this very sign-in (stamped a few
        // seconds either side of the event): what it said before counts.
        let old = at - 45 * DAY;
        assert_eq!(
            sign_in_before(at, None, [Some(at - 2), Some(old)]),
            Some(old)
        );
        assert_eq!(
            sign_in_before(at, None, [Some(at + 3), Some(old)]),
            Some(old)
        );
        // The inventory not yet caught up: its last value is the one before.
        assert_eq!(sign_in_before(at, None, [Some(old), None]), Some(old));
        // A sign-in the rules saw since is the latest, whatever the
        // inventory says; one after this event (a late commit) is not.
        let seen = Some(LastSignIn(at - 3_600));
        assert_eq!(
            sign_in_before(at, seen, [Some(at), Some(old)]),
            Some(at - 3_600)
        );
        assert_eq!(
            sign_in_before(at, Some(LastSignIn(at + 60)), [None, None]),
            None
        );
        // The first sign-in of a backfill, the inventory read after it: the
        // inventory's value is later, its previous unknown.
        assert_eq!(sign_in_before(at - 6 * DAY, None, [Some(at), None]), None);
    }

    #[test]
    fn a_country_is_rare_for_the_instance_under_one_percent_of_a_long_enough_history() {
        let mut i = InstanceCountries::default();
        // 99 sign-ins over two days: still learning.
        for n in 0..99 {
            i.learn(c(if n % 3 == 0 { "DE" } else { "US" }), T0 + n * 2_000);
        }
        assert_eq!(i.rare(c("VN"), T0 + 200_000), None);
        i.learn(c("US"), T0 + 199_000);
        assert_eq!(
            i.rare(c("VN"), T0 + 200_000),
            Some(Share {
                sign_ins: 0,
                of: 100
            })
        );
        assert_eq!(i.rare(c("DE"), T0 + 200_000), None, "a third of them");
        // One in 101 is still under one percent; two in 102 are not.
        i.learn(c("VN"), T0 + 200_000);
        assert_eq!(
            i.rare(c("VN"), T0 + 200_001),
            Some(Share {
                sign_ins: 1,
                of: 101
            })
        );
        i.learn(c("VN"), T0 + 200_002);
        assert_eq!(i.rare(c("VN"), T0 + 200_003), None);
        // A hundred sign-ins in one day are not enough.
        let mut busy = InstanceCountries::default();
        for n in 0..200 {
            busy.learn(c("US"), T0 - T0 % DAY + n);
        }
        assert_eq!(busy.rare(c("VN"), T0 - T0 % DAY + 300), None);
        // Bounded.
        let mut many = InstanceCountries::default();
        for (n, code) in ('A'..='Z')
            .flat_map(|a| ('A'..='Z').map(move |b| format!("{a}{b}")))
            .enumerate()
        {
            many.learn(c(&code), T0 + n as i64);
        }
        assert_eq!(many.seen.len(), INSTANCE_COUNTRIES_KEPT);
        // A year of the US, then a month of Germany: the old counts have
        // halved, so Germany is no longer rare.
        let mut grown = InstanceCountries::default();
        for d in 0..365 {
            for n in 0..100 {
                grown.learn(c("US"), T0 + d * DAY + n);
            }
        }
        for d in 365..395 {
            for n in 0..10 {
                grown.learn(c("DE"), T0 + d * DAY + n);
            }
            grown.learn(c("US"), T0 + d * DAY + 50_000);
        }
        assert_eq!(grown.rare(c("DE"), T0 + 396 * DAY), None);
        assert!(grown.rare(c("VN"), T0 + 396 * DAY).is_some());
    }

    #[test]
    fn a_list_keeps_the_most_used_first_and_drops_the_least_used() {
        let mut list: Vec<(String, u32, i64)> = Vec::new();
        count(&mut list, "A", 1, 3);
        count(&mut list, "B", 1, 3);
        count(&mut list, "B", 2, 3);
        count(&mut list, "C", 2, 3);
        // B overtook A; A and C tie, by name.
        let names = |l: &Vec<(String, u32, i64)>| l.iter().map(|s| s.0.clone()).collect::<Vec<_>>();
        assert_eq!(names(&list), ["B", "A", "C"]);
        count(&mut list, "C", 3, 3);
        count(&mut list, "C", 3, 3);
        assert_eq!(names(&list), ["C", "B", "A"]);
        assert_eq!(list[0], ("C".to_string(), 3, 3));
        // Full: the least used (A) goes for D.
        count(&mut list, "D", 4, 3);
        assert_eq!(names(&list), ["C", "B", "D"]);
    }

    #[test]
    fn a_new_network_is_news_like_a_new_country() {
        let home = Some(Asn(64500));
        let cloud = Asn(16509);
        let mut p = Places::default();
        assert_eq!(p.judge_network(cloud, T0), PlaceVerdict::Learning);
        for i in 0..5 {
            p.learn("192.0.2.1", c("US"), home, T0 + i * 40_000);
        }
        assert_eq!(
            p.judge_network(Asn(64500), T0 + 300_000),
            PlaceVerdict::Usual
        );
        assert_eq!(p.judge_network(cloud, T0 + 300_000), PlaceVerdict::New);
        // A sign-in whose network the data does not name counts for the
        // history's length, not for any network.
        p.learn("192.0.2.1", c("US"), None, T0 + 310_000);
        assert_eq!(p.describe_networks(T0 + 310_000), "AS64500 (5)");
        p.learn("192.0.2.1", c("US"), Some(cloud), T0 + 320_000);
        assert_eq!(p.judge_network(cloud, T0 + 330_000), PlaceVerdict::Usual);
        assert_eq!(
            p.describe_networks(T0 + 330_000),
            "AS64500 (5) and AS16509 (1)"
        );
        assert_eq!(
            p.describe_networks(T0 + 160_000 + KEEP_DAYS * DAY),
            "AS16509 (1)",
            "the home network unused for thirty days"
        );
        // Forgotten with the days, and bounded.
        assert_eq!(
            p.judge_network(cloud, T0 + 320_000 + KEEP_DAYS * DAY),
            PlaceVerdict::Learning
        );
        for n in 0..20 {
            p.learn(
                "192.0.2.1",
                c("US"),
                Some(Asn(n)),
                T0 + 400_000 + i64::from(n),
            );
        }
        assert_eq!(p.nets.len(), NETWORKS_KEPT);
        // A history saved before networks were kept still reads, and its
        // networks are learning: a deployment upgraded to networks does not
        // find every user's usual network new at once.
        let mut old: Places =
            serde_json::from_str(r#"{"from":20000,"to":20003,"seen":[["US",7,20003]]}"#).unwrap();
        assert_eq!(old.sign_ins(), 7);
        assert_eq!(old.describe_networks(0), "no network the IP data names");
        let upgraded = 20_004 * DAY;
        assert_eq!(old.judge(c("US"), upgraded), PlaceVerdict::Usual);
        assert_eq!(old.judge_network(cloud, upgraded), PlaceVerdict::Learning);
        for n in 0..5 {
            old.learn("192.0.2.1", c("US"), home, upgraded + n * 3_600);
        }
        assert_eq!(
            old.judge_network(cloud, upgraded + 6 * 3_600),
            PlaceVerdict::Learning,
            "one day of networks"
        );
        old.learn("192.0.2.1", c("US"), home, upgraded + DAY);
        assert_eq!(
            old.judge_network(cloud, upgraded + DAY + 60),
            PlaceVerdict::New
        );
    }

    #[test]
    fn a_users_busiest_window_is_known_once_two_days_of_history_lie_before() {
        let day0 = T0 - T0.rem_euclid(DAY);
        let mut w = BusiestWindows::default();
        w.learn(day0 + 60, 12);
        w.learn(day0 + 120, 30);
        w.learn(day0 + 180, 7);
        w.learn(day0 + DAY, 3);
        assert_eq!(w.usual(day0 + DAY + 60), None, "one day before");
        assert_eq!(w.usual(day0 + 2 * DAY), Some(30));
        // Today's own windows do not raise what is usual today.
        w.learn(day0 + 2 * DAY + 10, 100);
        assert_eq!(w.usual(day0 + 2 * DAY + 200), Some(30));
        assert_eq!(w.usual(day0 + 3 * DAY), Some(100));
        // A spoiled day (one that raised an alert) never counts.
        w.spoil(day0 + 2 * DAY + 20);
        assert_eq!(w.usual(day0 + 3 * DAY), Some(30));
        // Thirty days on, the old days are gone.
        assert_eq!(w.usual(day0 + 40 * DAY), None);
        w.learn(day0 + 40 * DAY, 1);
        assert_eq!(w.weight(), 1);
        let mut users: BTreeMap<String, BusiestWindows> = BTreeMap::new();
        users.insert(
            "old".into(),
            BusiestWindows(vec![(day0.div_euclid(DAY), 5, false)]),
        );
        users.insert("new".into(), w);
        prune(&mut users, day0 + 40 * DAY, USERS_KEPT);
        assert_eq!(users.keys().collect::<Vec<_>>(), ["new"]);
    }

    #[test]
    fn countries_unused_for_thirty_days_are_forgotten_and_the_history_is_bounded() {
        let mut p = Places::default();
        for i in 0..6 {
            p.learn("192.0.2.1", c("DE"), None, T0 + i * DAY);
        }
        let later = T0 + 5 * DAY + KEEP_DAYS * DAY;
        assert_eq!(p.judge(c("DE"), later), PlaceVerdict::Learning, "forgotten");
        p.learn("192.0.2.1", c("FR"), None, later);
        assert_eq!(p.sign_ins(), 1);
        for (n, code) in [
            "AT", "BE", "CH", "CZ", "DK", "ES", "FI", "GB", "HU", "IE", "IT", "LU", "NL", "PL",
        ]
        .iter()
        .enumerate()
        {
            p.learn("192.0.2.1", c(code), None, later + n as i64);
        }
        assert_eq!(p.seen.len(), COUNTRIES_KEPT);
        let mut users: BTreeMap<String, Places> = BTreeMap::new();
        users.insert("old".into(), {
            let mut o = Places::default();
            o.learn("192.0.2.1", c("US"), None, T0);
            o
        });
        users.insert("new".into(), p);
        prune(&mut users, later, USERS_KEPT);
        assert_eq!(users.keys().collect::<Vec<_>>(), ["new"]);
        // Past the bound, the accounts with the fewest sign-ins go: a
        // flood of new ones does not push out a daily user's history.
        let mut many: BTreeMap<String, Places> = (0..USERS_KEPT + 10)
            .map(|i| {
                let mut o = Places::default();
                o.learn(
                    "192.0.2.1",
                    c("US"),
                    None,
                    T0 + 20 * DAY + (i as i64 % 1000),
                );
                (format!("u{i}"), o)
            })
            .collect();
        let mut daily = Places::default();
        for d in 0..10 {
            daily.learn("192.0.2.1", c("US"), None, T0 + d * DAY);
        }
        many.insert("daily".into(), daily);
        prune(&mut many, T0 + 25 * DAY, USERS_KEPT);
        assert_eq!(many.len(), USERS_KEPT);
        assert!(many.contains_key("daily"), "the long history stays");
        let text = serde_json::to_string(many.values().next().unwrap()).unwrap();
        // One country and the latest sign-in (country, time, address).
        assert!(text.len() < 100, "{text}");
    }
}
