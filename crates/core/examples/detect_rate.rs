//! `make bench`'s detection figures: the rules' CPU per 10,000 events
//! natively, with the baselines at work (every sign-in placed by the IP
//! table the worker carries, attachment downloads, the inventory's last
//! sign-ins) against the same stream with nothing for them to judge (no
//! table, no download, no last sign-in: what the ten rules before them
//! see), and the bytes of the rules' saved state per user. A month of
//! 1,000 people in pages of 10,000 events, each page handled and saved
//! as the worker does.

use std::net::Ipv4Addr;
use std::time::Instant;

use snc_core::clock::rfc3339;
use snc_core::pull::events::{Event, Kind, RawRecord};
use snc_core::watch::detect::{Detector, Directory, Person, RoleInfo, RuleConfig};
use snc_ipdata::build::{table, Installed};
use snc_ipdata::IpData;

const PEOPLE: u32 = 1_000;
const DAYS: i64 = 30;
const PAGE: usize = 10_000;
const T0: i64 = 1_767_225_600;

struct People {
    /// Each person's last sign-in as the inventory read it.
    last_login: Option<i64>,
}

impl Directory for People {
    fn person(&self, user: &str) -> Option<Person> {
        Some(Person {
            user_name: user.to_string(),
            active: true,
            locked_out: false,
            privileged: user.ends_with('7'),
            last_login: self.last_login,
            login_before: None,
        })
    }
    fn role(&self, _: &str) -> Option<RoleInfo> {
        None
    }
    fn grantee(&self, _: &str) -> Option<String> {
        None
    }
    fn property(&self, _: &str) -> Option<String> {
        None
    }
}

/// A month of events in time order: per person and day four sign-ins
/// (from their home address, one in twenty from elsewhere), a failed one
/// now and then, and twelve transactions, two of them downloads.
fn stream(with_baselines: bool) -> Vec<Event> {
    let mut x: u32 = 0x2545_f491;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    let homes: Vec<u32> = (0..PEOPLE).map(|_| next()).collect();
    let mut out = Vec::new();
    let raw = RawRecord::parse("{}").unwrap_or_else(|| unreachable!());
    let mut n = 0u64;
    for day in 0..DAYS {
        for (p, home) in homes.iter().enumerate() {
            let user = format!("person.{p}");
            for k in 0..17u32 {
                n += 1;
                let at = T0 + day * 86_400 + i64::from(next() % 86_400);
                let (kind, table, ip, url) = match k {
                    0..=3 => {
                        let ip = if next() % 20 == 0 { next() } else { *home };
                        (Kind::Login, "sysevent", ip, None)
                    }
                    4 if next() % 10 == 0 => (Kind::LoginFailed, "sysevent", *home, None),
                    4 => continue,
                    5 | 6 if with_baselines => (
                        Kind::Transaction,
                        "syslog_transaction",
                        *home,
                        Some(format!("/sys_attachment.do?sys_id={n:032x}")),
                    ),
                    _ => (
                        Kind::Transaction,
                        "syslog_transaction",
                        *home,
                        Some(format!("/incident.do?sys_id={n:032x}")),
                    ),
                };
                let ip = if with_baselines {
                    Ipv4Addr::from(ip).to_string()
                } else {
                    // Documentation addresses: placed nowhere.
                    Ipv4Addr::new(203, 0, 113, (ip % 250) as u8 + 1).to_string()
                };
                out.push(Event {
                    id: format!("{table}:{n:032x}"),
                    connection_id: "bench".into(),
                    occurred_at: rfc3339(at),
                    kind,
                    actor: Some(user.clone()),
                    source_ip: Some(ip),
                    target: None,
                    old_value: None,
                    new_value: url,
                    source_table: table.into(),
                    raw: raw.clone(),
                    truncated_fields: Vec::new(),
                });
            }
        }
    }
    out.sort_by(|a, b| a.occurred_at.cmp(&b.occurred_at));
    out
}

/// Milliseconds per 10,000 events, and the saved state's bytes at the end.
fn run(events: &[Event], ip_data: IpData<'static>, dir: &People) -> (f64, usize) {
    let mut d = Detector::new(RuleConfig::default()).with_ip_data(ip_data);
    let mut saved = String::new();
    let started = Instant::now();
    for page in events.chunks(PAGE) {
        let refs: Vec<&Event> = page.iter().collect();
        let alerts = d.handle("bench", &refs, dir);
        std::hint::black_box(alerts);
        saved = d.save();
    }
    let ms = started.elapsed().as_secs_f64() * 1_000.0;
    (ms * 10_000.0 / events.len() as f64, saved.len())
}

fn main() {
    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../node_modules/@ip-location-db");
    let Some(installed) = Installed::read(&root) else {
        eprintln!("{} is not installed (run npm ci)", root.display());
        std::process::exit(1)
    };
    let bytes = match table(&installed.sources("")) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1)
        }
    };
    let ip_data = match IpData::open(Box::leak(bytes.into_boxed_slice())) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1)
        }
    };
    let plain = stream(false);
    let full = stream(true);
    let (without, _) = run(&plain, IpData::empty(), &People { last_login: None });
    let (with, bytes) = run(
        &full,
        ip_data,
        &People {
            last_login: Some(T0 - 40 * 86_400),
        },
    );
    println!(
        "detection, natively, {} events of {PEOPLE} people over {DAYS} days in pages of {PAGE}: {without:.1} ms per 10,000 with nothing for the baselines to judge, {with:.1} ms with them ({:.2}x); saved state {bytes} bytes, {} bytes per person",
        full.len(),
        with / without,
        bytes / PEOPLE as usize
    );
}
