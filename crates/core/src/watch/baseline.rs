//! What is normal for each user, learned from the events the connection
//! stores as the rules see them (each once, a table's in time order), so
//! the 7-day backfill seeds it at connect and each event is judged against
//! what came before it: last week's sign-in from a new country is an alert
//! at connect.
//!
//! Sign-in places (`Places`): per user, the countries of their successful
//! sign-ins, each with its sign-ins counted since it was first seen and
//! the day of the last; a country unused for `KEEP_DAYS` is forgotten. A
//! country is news once the user's history holds at least `MIN_SIGN_INS`
//! sign-ins spanning at least `MIN_DAYS` days; before that the user is
//! still learning and nothing is judged. Bounded, as it is kept in the
//! rules' one state row: `COUNTRIES_KEPT` countries a user (the least used
//! go first) and `USERS_KEPT` users (those with the fewest sign-ins go
//! first, so a flood of throwaway accounts does not push out the history
//! of the people who sign in every day).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use snc_ipdata::Country;

/// A country unused this long is forgotten; a user too.
pub const KEEP_DAYS: i64 = 30;
/// Sign-ins a user's history needs before a new country is news.
pub const MIN_SIGN_INS: u32 = 5;
/// Days those sign-ins must span (the first and the last counted).
pub const MIN_DAYS: i64 = 2;
pub const COUNTRIES_KEPT: usize = 6;
pub const USERS_KEPT: usize = 5_000;

const DAY: i64 = 86_400;

/// One user's sign-in countries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Places {
    /// The first and the last day (Unix days) of the history kept.
    from: i64,
    to: i64,
    /// (country, sign-ins, last day), most used first.
    seen: Vec<(String, u32, i64)>,
}

/// A sign-in's country against the user's history.
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
        let kept = || self.seen.iter().filter(|s| s.2 > day - KEEP_DAYS);
        if kept().any(|s| s.0 == country.as_str()) {
            return PlaceVerdict::Usual;
        }
        let sign_ins: u32 = kept().map(|s| s.1).sum();
        let from = self.from.max(day - KEEP_DAYS + 1);
        if sign_ins >= MIN_SIGN_INS && spans_enough(from, self.to) {
            PlaceVerdict::New
        } else {
            PlaceVerdict::Learning
        }
    }

    /// Counts a sign-in from `country` at `at`.
    pub fn learn(&mut self, country: Country, at: i64) {
        let day = at.div_euclid(DAY);
        self.seen.retain(|s| s.2 > day - KEEP_DAYS);
        if self.seen.is_empty() {
            self.from = day;
            self.to = day;
        }
        self.from = self.from.max(day - KEEP_DAYS + 1).min(day);
        self.to = self.to.max(day);
        match self.seen.iter_mut().find(|s| s.0 == country.as_str()) {
            Some(s) => {
                s.1 = s.1.saturating_add(1);
                s.2 = s.2.max(day);
            }
            None => {
                if self.seen.len() >= COUNTRIES_KEPT {
                    self.seen.pop();
                }
                self.seen.push((country.as_str().to_string(), 1, day));
            }
        }
        self.seen
            .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    }

    /// The history in words: "41 sign-ins from US and 2 from DE over 9
    /// days".
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .seen
            .iter()
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
        let days = self.days();
        format!("{list} over {days} day{}", plural(days as u32))
    }
}

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

impl History for BusiestWindows {
    fn weight(&self) -> u32 {
        self.0.iter().fold(0u32, |sum, d| sum.saturating_add(d.1))
    }
    fn last_day(&self) -> i64 {
        self.0.last().map_or(i64::MIN, |d| d.0)
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
            p.learn(c("US"), T0 + i * 40_000);
        }
        assert_eq!(p.judge(c("BR"), T0 + 200_000), PlaceVerdict::Learning);
        p.learn(c("US"), T0 + 200_000);
        assert_eq!(p.judge(c("US"), T0 + 210_000), PlaceVerdict::Usual);
        assert_eq!(p.judge(c("BR"), T0 + 210_000), PlaceVerdict::New);
        assert_eq!(p.describe(), "5 sign-ins from US over 3 days");
        p.learn(c("BR"), T0 + 210_000);
        assert_eq!(
            p.judge(c("BR"), T0 + 220_000),
            PlaceVerdict::Usual,
            "learned"
        );
        assert_eq!(p.describe(), "5 sign-ins from US and 1 from BR over 3 days");
        // Five sign-ins in one day are not enough: they must span two.
        let mut busy = Places::default();
        for i in 0..10 {
            busy.learn(c("US"), T0 - T0 % DAY + i * 60);
        }
        assert_eq!(
            busy.judge(c("BR"), T0 - T0 % DAY + 3_600),
            PlaceVerdict::Learning
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
            p.learn(c("DE"), T0 + i * DAY);
        }
        let later = T0 + 5 * DAY + KEEP_DAYS * DAY;
        assert_eq!(p.judge(c("DE"), later), PlaceVerdict::Learning, "forgotten");
        p.learn(c("FR"), later);
        assert_eq!(p.sign_ins(), 1);
        for (n, code) in [
            "AT", "BE", "CH", "CZ", "DK", "ES", "FI", "GB", "HU", "IE", "IT", "LU", "NL", "PL",
        ]
        .iter()
        .enumerate()
        {
            p.learn(c(code), later + n as i64);
        }
        assert_eq!(p.seen.len(), COUNTRIES_KEPT);
        let mut users: BTreeMap<String, Places> = BTreeMap::new();
        users.insert("old".into(), {
            let mut o = Places::default();
            o.learn(c("US"), T0);
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
                o.learn(c("US"), T0 + 20 * DAY + (i as i64 % 1000));
                (format!("u{i}"), o)
            })
            .collect();
        let mut daily = Places::default();
        for d in 0..10 {
            daily.learn(c("US"), T0 + d * DAY);
        }
        many.insert("daily".into(), daily);
        prune(&mut many, T0 + 25 * DAY, USERS_KEPT);
        assert_eq!(many.len(), USERS_KEPT);
        assert!(many.contains_key("daily"), "the long history stays");
        let text = serde_json::to_string(many.values().next().unwrap()).unwrap();
        assert!(text.len() < 60, "{text}");
    }
}
