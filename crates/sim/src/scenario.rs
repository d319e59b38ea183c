//! Attack scenarios planted on request (`POST /__sim/scenario`): the records
//! a real instance would hold after each attack, written as its own code
//! paths write them, and for each attack its near misses: one below the
//! threshold and one outside the window (or, for rules of a single event,
//! the closest event that must not fire). The answer names the ground
//! truth: which rule must fire for which actor or source IP (nothing for a
//! near miss). Each call picks people and addresses not used before, so two
//! plantings of one rule are two attacks.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::data::{self, Generator, Record, Table, Value};

/// One scenario per detection rule, named as the rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    FailedLoginBurst,
    PasswordSpray,
    LoginAfterFailures,
    AdminRoleGranted,
    AdminImpersonated,
    SecurityElevation,
    MassDelete,
    BulkExport,
    LoginByInactiveUser,
    PostureDrift,
    NewCountry,
    MassDownload,
    DormantAccountUsed,
    RiskyIp,
    ImpossibleTravel,
    InfrequentCountry,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// The attack: its rule must fire once.
    #[default]
    Positive,
    /// One short of the threshold (or the nearest benign event).
    Below,
    /// Spread wider than the window (or another nearest benign event).
    Outside,
}

/// A country's public block, to sign in from: real organisations'
/// addresses, written into records only (the simulator sends nothing to
/// them), whose country the connector's IP data gives as `country`.
#[derive(Clone, Copy, Debug)]
pub struct Place {
    pub country: &'static str,
    /// The block's first three octets: a /24 wholly of that country.
    pub block: &'static str,
}

impl Place {
    /// The `n`th address of the block (1 to 250).
    pub fn address(&self, n: i64) -> String {
        format!("{}.{}", self.block, 1 + n.rem_euclid(250))
    }
}

/// Blocks of several countries (the IP data's countries, 2026-06).
pub const PLACES: [Place; 6] = [
    Place {
        country: "US",
        block: "8.8.8",
    },
    Place {
        country: "BR",
        block: "200.160.2",
    },
    Place {
        country: "DE",
        block: "193.99.144",
    },
    Place {
        country: "JP",
        block: "203.178.141",
    },
    Place {
        country: "GB",
        block: "212.58.244",
    },
    Place {
        country: "ZA",
        block: "41.0.0",
    },
];

/// Blocks of hosting networks in the US (the IP data's, 2026-06): Amazon
/// Web Services (AS14618), DigitalOcean (AS14061), Microsoft Azure
/// (AS8075). Written into records only, like `PLACES`.
pub const HOSTING: [Place; 3] = [
    Place {
        country: "US",
        block: "3.80.0",
    },
    Place {
        country: "US",
        block: "104.131.0",
    },
    Place {
        country: "US",
        block: "20.42.0",
    },
];

/// A people's network of a country the noise never signs in from (Vietnam:
/// VNPT), for `infrequent_country`; and one of a country it often does
/// (Germany: Deutsche Telekom).
pub const RARE: Place = Place {
    country: "VN",
    block: "113.160.0",
};
pub const COMMON: Place = Place {
    country: "DE",
    block: "80.128.0",
};

/// A planting's home and another country.
fn places_for(seq: usize) -> (Place, Place) {
    let home = PLACES[seq % PLACES.len()];
    let away = PLACES[(seq + 1 + seq / PLACES.len()) % PLACES.len()];
    if away.country == home.country {
        (home, PLACES[(seq + 2) % PLACES.len()])
    } else {
        (home, away)
    }
}

/// A rule that must fire, and for whom.
#[derive(Debug, Serialize)]
pub struct Expected {
    pub rule: Scenario,
    pub actor: Option<String>,
    pub source_ip: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Planted {
    pub scenario: Scenario,
    pub variant: Variant,
    pub actor: Option<String>,
    pub ip: Option<String>,
    pub target: Option<String>,
    pub records: usize,
    /// The ground truth: empty for a near miss.
    pub expect: Vec<Expected>,
}

fn sysevent(g: &mut Generator, name: &str, parm1: &str, parm2: &str, at: i64) -> Record {
    let id = g.sys_id();
    let t = Value::DateTime(at);
    Record {
        sys_id: id.clone(),
        created: at,
        fields: vec![
            ("sys_id", Value::Str(id)),
            ("name", Value::Str(name.into())),
            ("parm1", Value::Str(parm1.into())),
            ("parm2", Value::Str(parm2.into())),
            ("instance", Value::Empty),
            ("queue", Value::Empty),
            ("state", Value::Str("processed".into())),
            ("table", Value::Empty),
            ("uri", Value::Empty),
            ("processed", t.clone()),
            ("sys_created_on", t.clone()),
            ("sys_created_by", Value::Str(parm1.into())),
            ("sys_updated_on", t),
        ],
    }
}

fn transaction(g: &mut Generator, user: &str, url: &str, ip: &str, at: i64) -> Record {
    let id = g.sys_id();
    Record {
        sys_id: id.clone(),
        created: at,
        fields: vec![
            ("sys_id", Value::Str(id)),
            ("url", Value::Str(url.into())),
            ("remote_ip", Value::Str(ip.into())),
            ("type", Value::Str("form".into())),
            ("response_time", Value::Int(420)),
            ("response_status", Value::Int(200)),
            ("session", Value::Str(format!("{at:032X}"))),
            ("system_id", Value::Str("app128.sim".into())),
            ("sys_created_on", Value::DateTime(at)),
            ("sys_created_by", Value::Str(user.into())),
        ],
    }
}

fn find_user(
    tables: &HashMap<&'static str, Table>,
    pred: impl Fn(&Record) -> bool,
) -> Vec<(String, String)> {
    tables
        .get("sys_user")
        .map(|t| {
            t.records
                .iter()
                .filter(|r| pred(r))
                .filter_map(|r| match r.get("user_name") {
                    Some(Value::Str(u)) if u.contains('.') && !u.starts_with("svc.") => {
                        Some((u.clone(), r.sys_id.clone()))
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn holds(tables: &HashMap<&'static str, Table>, user_sys_id: &str, role: &str) -> bool {
    tables.get("sys_user_has_role").is_some_and(|t| {
        t.records.iter().any(|r| {
            matches!(r.get("user"), Some(Value::Ref { sys_id, .. }) if sys_id == user_sys_id)
                && matches!(r.get("role"), Some(Value::Ref { display, .. }) if display == role)
        })
    })
}

fn role_id(tables: &HashMap<&'static str, Table>, role: &str) -> Option<String> {
    tables.get("sys_user_role").and_then(|t| {
        t.records
            .iter()
            .find(|r| matches!(r.get("name"), Some(Value::Str(n)) if n == role))
            .map(|r| r.sys_id.clone())
    })
}

/// What to plant, and when.
#[derive(Clone, Copy, Debug)]
pub struct Planting {
    pub scenario: Scenario,
    pub variant: Variant,
    /// The attack's time (unix seconds).
    pub at: i64,
    /// The simulator's clock: records the planting changes are updated now.
    pub now: i64,
    /// Numbers the plantings, so each picks people and addresses of its own.
    pub seq: usize,
}

/// Active accounts, not locked out, whose last sign-in lies `days` (whole
/// days) before `at`.
fn signed_in_last(
    tables: &HashMap<&'static str, Table>,
    at: i64,
    days: std::ops::Range<i64>,
) -> Vec<String> {
    find_user(tables, |r| {
        matches!(r.get("active"), Some(Value::Bool(true)))
            && matches!(r.get("locked_out"), Some(Value::Bool(false)))
            && matches!(r.get("last_login_time"), Some(Value::DateTime(t))
                if days.contains(&((at - t).div_euclid(86_400))))
    })
    .into_iter()
    .map(|(u, _)| u)
    .collect()
}

/// Writes a scenario's records. A sign-in updates its account's
/// `last_login_time` as ServiceNow does.
pub fn plant(
    tables: &mut HashMap<&'static str, Table>,
    g: &mut Generator,
    reserved: &[String],
    planting: &Planting,
) -> Result<Planted, String> {
    let Planting {
        scenario,
        variant,
        at,
        now,
        seq,
    } = *planting;
    // People the noise never names: what the scenario makes of them is
    // all there is of them.
    let benign: Vec<String> = reserved.to_vec();
    if benign.len() < 12 {
        return Err("the instance needs at least 60 benign people (--people)".into());
    }
    // Each planting its own person, address and window of people.
    let person = benign[seq % benign.len()].clone();
    let ip = format!("203.0.{}.{}", 113 + seq / 250, 1 + seq % 250);
    let mut out: Vec<(&'static str, Record)> = Vec::new();
    let mut planted = Planted {
        scenario,
        variant,
        actor: Some(person.clone()),
        ip: None,
        target: None,
        records: 0,
        expect: Vec::new(),
    };
    let positive = variant == Variant::Positive;
    let expect = |actor: Option<String>, ip: Option<String>| {
        if positive {
            vec![Expected {
                rule: scenario,
                actor,
                source_ip: ip,
            }]
        } else {
            Vec::new()
        }
    };
    match scenario {
        Scenario::FailedLoginBurst => {
            // 12 in 4 minutes; 9 in 3; 12 over 33 minutes.
            let (n, step) = match variant {
                Variant::Positive => (12, 20),
                Variant::Below => (9, 20),
                Variant::Outside => (12, 180),
            };
            for i in 0..n {
                out.push((
                    "sysevent",
                    sysevent(g, "login.failed", &person, &ip, at + i * step),
                ));
            }
            planted.ip = Some(ip.clone());
            planted.expect = expect(Some(person.clone()), Some(ip));
        }
        Scenario::PasswordSpray => {
            let (n, step) = match variant {
                Variant::Positive => (12, 15),
                Variant::Below => (9, 15),
                Variant::Outside => (12, 180),
            };
            let start = (seq * 13) % benign.len();
            for i in 0..n {
                let user = &benign[(start + i as usize) % benign.len()];
                out.push((
                    "sysevent",
                    sysevent(g, "login.failed", user, &ip, at + i * step),
                ));
            }
            planted.actor = None;
            planted.ip = Some(ip.clone());
            planted.expect = expect(None, Some(ip));
        }
        Scenario::LoginAfterFailures => {
            // 5 failures then a success 30 s later; 4 failures; 5 failures
            // and the success 20 minutes after the last.
            let (n, gap) = match variant {
                Variant::Positive => (5, 30),
                Variant::Below => (4, 30),
                Variant::Outside => (5, 1_200),
            };
            for i in 0..n {
                out.push((
                    "sysevent",
                    sysevent(g, "login.failed", &person, &ip, at + i * 20),
                ));
            }
            out.push((
                "sysevent",
                sysevent(g, "login", &person, &ip, at + (n - 1) * 20 + gap),
            ));
            planted.ip = Some(ip.clone());
            planted.expect = expect(Some(person.clone()), Some(ip));
        }
        Scenario::AdminRoleGranted => {
            // admin granted; itil granted; user_admin granted (a role named
            // admin that is no admin role).
            let role = match variant {
                Variant::Positive => "admin",
                Variant::Below => "itil",
                Variant::Outside => "user_admin",
            };
            let (user, user_id) = find_user(
                tables,
                |r| matches!(r.get("user_name"), Some(Value::Str(u)) if *u == person),
            )
            .into_iter()
            .next()
            .ok_or("the person vanished")?;
            let rid = role_id(tables, role).ok_or("no such role")?;
            let user_ref = Value::Ref {
                table: "sys_user",
                sys_id: user_id,
                display: user.clone(),
            };
            out.push((
                "sys_user_has_role",
                data::role_grant(g, &user_ref, role, rid, at),
            ));
            planted.target = Some(role.into());
            planted.expect = expect(Some(user), None);
            planted.actor = Some("admin".into());
        }
        Scenario::AdminImpersonated => {
            let admins = find_user(tables, |_| true)
                .into_iter()
                .filter(|(_, id)| holds(tables, id, "admin"))
                .collect::<Vec<_>>();
            let admin = admins
                .get(seq % admins.len().max(1))
                .cloned()
                .ok_or("no person holds admin")?;
            // impersonation.start of an admin; of a benign person; the end
            // of an admin's impersonation.
            let (name, target) = match variant {
                Variant::Positive => ("impersonation.start", admin.0.clone()),
                // A person no scenario has made privileged.
                Variant::Below => {
                    let plain = (0..benign.len())
                        .map(|k| &benign[(seq * 11 + 3 + k) % benign.len()])
                        .find(|u| {
                            find_user(
                                tables,
                                |r| matches!(r.get("user_name"), Some(Value::Str(n)) if n == *u),
                            )
                            .first()
                            .is_some_and(|(_, id)| {
                                !data::PRIVILEGED.iter().any(|role| holds(tables, id, role))
                            })
                        })
                        .cloned()
                        .ok_or("every kept person is privileged")?;
                    ("impersonation.start", plain)
                }
                Variant::Outside => ("impersonation.end", admin.0.clone()),
            };
            out.push(("sysevent", sysevent(g, name, &person, &target, at)));
            planted.target = Some(target);
            planted.expect = expect(Some(person.clone()), None);
        }
        Scenario::SecurityElevation => {
            let (name, role) = match variant {
                Variant::Positive => ("security.elevated_role.enabled", "security_admin"),
                Variant::Below => ("security.elevated_role.enabled", "itil"),
                Variant::Outside => ("security.elevated_role.disabled", "security_admin"),
            };
            out.push(("sysevent", sysevent(g, name, &person, role, at)));
            planted.target = Some(role.into());
            planted.expect = expect(Some(person.clone()), None);
        }
        Scenario::MassDelete => {
            let (n, step) = match variant {
                Variant::Positive => (120, 2),
                Variant::Below => (99, 2),
                Variant::Outside => (120, 20),
            };
            for i in 0..n {
                let doc = g.sys_id();
                let mut r = data::deletion_record(
                    g,
                    "incident",
                    &doc,
                    &format!("INC{seq:03}{i:05}"),
                    at + i * step,
                );
                for (name, v) in r.fields.iter_mut() {
                    if *name == "sys_created_by" {
                        *v = Value::Str(person.clone());
                    }
                }
                out.push(("sys_audit_delete", r));
            }
            planted.expect = expect(Some(person.clone()), None);
        }
        Scenario::BulkExport => {
            let (n, step) = match variant {
                Variant::Positive => (25, 10),
                Variant::Below => (19, 10),
                Variant::Outside => (25, 120),
            };
            for i in 0..n {
                let processor = if i % 2 == 0 { "CSV" } else { "EXCEL" };
                let url = format!("/incident_list.do?{processor}&sysparm_query=active%3Dtrue");
                out.push((
                    "syslog_transaction",
                    transaction(g, &person, &url, &ip, at + i * step),
                ));
            }
            planted.ip = Some(ip.clone());
            planted.expect = expect(Some(person.clone()), Some(ip));
        }
        Scenario::LoginByInactiveUser => {
            let inactive = find_user(tables, |r| {
                matches!(r.get("active"), Some(Value::Bool(false)))
            });
            let locked = find_user(tables, |r| {
                matches!(r.get("active"), Some(Value::Bool(true)))
                    && matches!(r.get("locked_out"), Some(Value::Bool(true)))
            });
            // A sign-in by an inactive (or, on even plantings, locked-out)
            // account; a failed one; a sign-in by an active account.
            let pool = if (seq / 2).is_multiple_of(2) && !locked.is_empty() {
                &locked
            } else {
                &inactive
            };
            let (user, _) = pool
                .get(seq % pool.len().max(1))
                .cloned()
                .ok_or("no inactive account")?;
            let (name, who) = match variant {
                Variant::Positive => ("login", user),
                Variant::Below => ("login.failed", user),
                Variant::Outside => ("login", person.clone()),
            };
            out.push(("sysevent", sysevent(g, name, &who, &ip, at)));
            planted.actor = Some(who.clone());
            planted.ip = Some(ip.clone());
            planted.expect = expect(Some(who), Some(ip));
        }
        Scenario::PostureDrift => {
            // The session timeout set to 480 (failing); to 15 (passing); an
            // unchecked property changed.
            let (name, value) = match variant {
                Variant::Positive => ("glide.ui.session_timeout", "480"),
                Variant::Below => ("glide.ui.session_timeout", "15"),
                Variant::Outside => ("glide.ui.list.max_rows", "500"),
            };
            let old = data::property(tables, name).unwrap_or_else(|| "30".into());
            data::set_property(tables, g, name, value, at);
            let sys_id = tables
                .get("sys_properties")
                .and_then(|t| {
                    t.records
                        .iter()
                        .find(|r| matches!(r.get("name"), Some(Value::Str(n)) if n == name))
                        .map(|r| r.sys_id.clone())
                })
                .ok_or("the property was not written")?;
            let mut r = data::audit_record(g, "sys_properties", &sys_id, "value", &old, value, at);
            for (field, v) in r.fields.iter_mut() {
                if matches!(*field, "user" | "sys_created_by") {
                    *v = Value::Str(person.clone());
                }
            }
            out.push(("sys_audit", r));
            planted.target = Some(name.into());
            planted.expect = expect(Some(person.clone()), None);
        }
        Scenario::MassDownload => {
            // 60 attachment downloads in 5 minutes by someone with no
            // downloads before; 45; 60 in 5 minutes by someone who
            // downloaded 40 in 4 minutes on each of the three days before.
            let n = if variant == Variant::Below { 45 } else { 60 };
            if variant == Variant::Outside {
                for day in 1..=3 {
                    for i in 0..40 {
                        let when = at - day * 86_400 + i * 6;
                        let url = format!("/sys_attachment.do?sys_id={}", g.sys_id());
                        out.push((
                            "syslog_transaction",
                            transaction(g, &person, &url, &ip, when),
                        ));
                    }
                }
            }
            for i in 0..n {
                // The UI's download, spelled as a browser may send it, and
                // the Attachment API's.
                let url = match i % 3 {
                    0 => format!("/api/now/attachment/{}/file", g.sys_id()),
                    1 => format!(
                        "/sys_attachment.do;jsessionid={:X}?sys_id={}",
                        at,
                        g.sys_id()
                    ),
                    _ => format!("/sys_attachment.do?sys_id={}", g.sys_id()),
                };
                out.push((
                    "syslog_transaction",
                    transaction(g, &person, &url, &ip, at + i * 5),
                ));
            }
            planted.ip = Some(ip.clone());
            planted.expect = expect(Some(person.clone()), Some(ip));
        }
        Scenario::NewCountry => {
            // Six sign-ins over three days from one country's address,
            // then, a day and a half after the last, one from another
            // country's (a flight away: not impossible travel); four (too
            // little history), then the other country; six, then another
            // address of the same country.
            let (home, away) = places_for(seq);
            let history = if variant == Variant::Below { 4 } else { 6 };
            for i in 0..history {
                let when = at - 4 * 86_400 + i * 43_200;
                out.push((
                    "sysevent",
                    sysevent(g, "login", &person, &home.address(i), when),
                ));
            }
            let last = match variant {
                Variant::Outside => home.address(history + 1),
                _ => away.address(seq as i64),
            };
            out.push(("sysevent", sysevent(g, "login", &person, &last, at)));
            planted.ip = Some(last.clone());
            planted.expect = expect(Some(person.clone()), Some(last));
        }
        Scenario::DormantAccountUsed => {
            // A sign-in by an account unused for 30 days or more; by one
            // unused for 7 to 29; a failed sign-in by a dormant account. The
            // connector judges by its inventory, so plant this after the
            // connection has read it: before, the record it reads already
            // holds this sign-in.
            let (days, name) = match variant {
                Variant::Positive => (30..10_000, "login"),
                Variant::Below => (7..30, "login"),
                Variant::Outside => (30..10_000, "login.failed"),
            };
            let pool = signed_in_last(tables, at, days);
            let user = pool
                .get(seq % pool.len().max(1))
                .cloned()
                .ok_or("no account of that age left (one person in 25 is dormant: --people)")?;
            out.push(("sysevent", sysevent(g, name, &user, &ip, at)));
            planted.actor = Some(user.clone());
            planted.ip = Some(ip.clone());
            planted.expect = expect(Some(user), Some(ip));
        }
        Scenario::RiskyIp => {
            // Six sign-ins over three days from a US address of a people's
            // network, then one from a US hosting network; six from the
            // hosting network, then another (the user always signs in from
            // the cloud); six from home, then a failed sign-in from the
            // hosting network.
            let home = PLACES[0];
            let cloud = HOSTING[seq % HOSTING.len()];
            let from = if variant == Variant::Below {
                cloud
            } else {
                home
            };
            for i in 0..6 {
                let when = at - 3 * 86_400 + i * 43_200;
                out.push((
                    "sysevent",
                    sysevent(g, "login", &person, &from.address(seq as i64 + i), when),
                ));
            }
            let last = cloud.address(seq as i64);
            let name = if variant == Variant::Outside {
                "login.failed"
            } else {
                "login"
            };
            out.push(("sysevent", sysevent(g, name, &person, &last, at)));
            planted.ip = Some(last.clone());
            planted.expect = expect(Some(person.clone()), Some(last));
        }
        Scenario::InfrequentCountry => {
            // A person's first sign-in, from a country nobody in the
            // instance signs in from; from one many do; a failed one from
            // the rare country.
            let (place, name) = match variant {
                Variant::Positive => (RARE, "login"),
                Variant::Below => (COMMON, "login"),
                Variant::Outside => (RARE, "login.failed"),
            };
            let ip = place.address(seq as i64);
            out.push(("sysevent", sysevent(g, name, &person, &ip, at)));
            planted.ip = Some(ip.clone());
            planted.expect = expect(Some(person.clone()), Some(ip));
        }
        Scenario::ImpossibleTravel => {
            // A sign-in from the US, then from Japan two hours later; the
            // same twelve hours apart (a flight); from the UK, then from
            // Germany half an hour later (near: no flight needed).
            let (first, second, gap) = match variant {
                Variant::Positive => (PLACES[0], PLACES[3], 2 * 3_600),
                Variant::Below => (PLACES[0], PLACES[3], 12 * 3_600),
                Variant::Outside => (PLACES[4], PLACES[2], 1_800),
            };
            let n = seq as i64;
            out.push((
                "sysevent",
                sysevent(g, "login", &person, &first.address(n), at - gap),
            ));
            let last = second.address(n);
            out.push(("sysevent", sysevent(g, "login", &person, &last, at)));
            planted.ip = Some(last.clone());
            planted.expect = expect(Some(person.clone()), Some(last));
        }
    }
    for (_, r) in out.iter().filter(|(t, _)| *t == "sysevent") {
        if let (Some(Value::Str(name)), Some(Value::Str(user))) = (r.get("name"), r.get("parm1")) {
            if name == "login" {
                data::signed_in(tables, user, r.created, now);
            }
        }
    }
    planted.records = out.len();
    let mut by_table: HashMap<&'static str, Vec<Record>> = HashMap::new();
    for (t, r) in out {
        by_table.entry(t).or_default().push(r);
    }
    for (t, rows) in by_table {
        tables.entry(t).or_default().insert_sorted(rows);
    }
    Ok(planted)
}
