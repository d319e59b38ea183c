//! ServiceNow encoded queries, server side: `^` (AND), `^OR`, `^NQ`,
//! `ORDERBY`/`ORDERBYDESC`, the usual operators, one level of dot-walk, and
//! ServiceNow's habit of silently ignoring terms on fields it does not know.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::data::{table_fields, Record, Table, Value};
use crate::time_fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Like,
    NotLike,
    In,
    NotIn,
    StartsWith,
    EndsWith,
    IsEmpty,
    IsNotEmpty,
    Between,
}

#[derive(Clone, Debug)]
pub struct Term {
    /// `user` or, dot-walked, `user.user_name`.
    pub path: Vec<String>,
    pub op: Op,
    pub value: String,
    lower: String,
    time: Option<i64>,
    num: Option<f64>,
    list: Vec<String>,
    between: Option<(String, String)>,
}

/// `clauses[i]` is a disjunction of terms; a query is their conjunction, and
/// `alternatives` (from `^NQ`) are OR'd.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub alternatives: Vec<Vec<Vec<Term>>>,
    pub order: Vec<(String, bool)>,
}

const OPS: &[(&str, Op)] = &[
    ("ISNOTEMPTY", Op::IsNotEmpty),
    ("ISEMPTY", Op::IsEmpty),
    ("NOT LIKE", Op::NotLike),
    ("NOT IN", Op::NotIn),
    ("STARTSWITH", Op::StartsWith),
    ("ENDSWITH", Op::EndsWith),
    ("BETWEEN", Op::Between),
    ("LIKE", Op::Like),
    ("IN", Op::In),
    ("!=", Op::Ne),
    (">=", Op::Ge),
    ("<=", Op::Le),
    ("=", Op::Eq),
    (">", Op::Gt),
    ("<", Op::Lt),
];

/// Who asks and when: what `javascript:gs.…()` values are evaluated against.
pub struct ScriptContext<'a> {
    pub user_sys_id: &'a str,
    pub user_name: &'a str,
    /// The instance's clock, unix seconds (the sim's zone is UTC).
    pub now: i64,
}

/// Evaluates the `javascript:gs.…()` values ServiceNow accepts in encoded
/// queries, as the instance does for the session: `getUserID()`,
/// `getUserName()`, `daysAgo(n)`, `daysAgoStart(n)`, `hoursAgo(n)`,
/// `minutesAgo(n)`, `beginningOfToday()`. `dateGenerate` is read where the
/// value is parsed; anything else is left as written and matches nothing.
pub fn evaluate_scripts(encoded: &str, ctx: &ScriptContext<'_>) -> String {
    const MARK: &str = "javascript:gs.";
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let call = &rest[at + MARK.len()..];
        let evaluated = call.split_once('(').and_then(|(name, after)| {
            let (args, tail) = after.split_once(')')?;
            let n = || args.trim().trim_matches('\'').parse::<i64>().ok();
            let day = |t: i64| t - t.rem_euclid(86_400);
            let value = match name {
                "getUserID" => ctx.user_sys_id.to_string(),
                "getUserName" => ctx.user_name.to_string(),
                "daysAgo" => time_fmt::raw(ctx.now - n()? * 86_400),
                "daysAgoStart" => time_fmt::raw(day(ctx.now - n()? * 86_400)),
                "hoursAgo" => time_fmt::raw(ctx.now - n()? * 3_600),
                "minutesAgo" => time_fmt::raw(ctx.now - n()? * 60),
                "beginningOfToday" => time_fmt::raw(day(ctx.now)),
                _ => return None,
            };
            Some((value, tail))
        });
        match evaluated {
            Some((value, tail)) => {
                out.push_str(&value);
                rest = tail;
            }
            None => {
                out.push_str(MARK);
                rest = call;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `javascript:gs.dateGenerate('2024-01-01','00:00:00')` → `2024-01-01 00:00:00`
/// (what pysnow sends for datetimes); other values unchanged.
fn literal(value: &str) -> String {
    let v = value.trim();
    if let Some(args) = v
        .strip_prefix("javascript:gs.dateGenerate(")
        .and_then(|r| r.strip_suffix(')'))
    {
        let parts: Vec<&str> = args
            .split(',')
            .map(|p| p.trim().trim_matches('\'').trim_matches('"'))
            .collect();
        if let [date, time] = parts.as_slice() {
            return format!("{date} {time}");
        }
    }
    value.to_string()
}

fn parse_term(token: &str) -> Option<Term> {
    let field_len = token
        .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'))
        .unwrap_or(token.len());
    if field_len == 0 {
        return None;
    }
    let (field, rest) = token.split_at(field_len);
    let (op, value) = OPS
        .iter()
        .find_map(|(sym, op)| rest.strip_prefix(sym).map(|v| (*op, v)))?;
    let value = literal(value);
    let list = value
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    let between = value.split_once('@').map(|(a, b)| (literal(a), literal(b)));
    Some(Term {
        path: field.split('.').map(str::to_string).collect(),
        op,
        lower: value.to_ascii_lowercase(),
        time: time_fmt::parse_raw(&value),
        num: value.trim().parse().ok(),
        list,
        between,
        value,
    })
}

pub fn parse(encoded: &str) -> Query {
    let mut q = Query::default();
    for alt in encoded.split("^NQ") {
        let mut clauses: Vec<Vec<Term>> = Vec::new();
        for token in alt.split('^') {
            if token.is_empty() || token == "EQ" {
                continue;
            }
            if let Some(f) = token.strip_prefix("ORDERBYDESC") {
                q.order.push((f.to_string(), true));
            } else if let Some(f) = token.strip_prefix("ORDERBY") {
                q.order.push((f.to_string(), false));
            } else if let Some(t) = token.strip_prefix("OR") {
                match (parse_term(t), clauses.last_mut()) {
                    (Some(term), Some(last)) => last.push(term),
                    (Some(term), None) => clauses.push(vec![term]),
                    (None, _) => {}
                }
            } else if let Some(term) = parse_term(token) {
                clauses.push(vec![term]);
            }
        }
        q.alternatives.push(clauses);
    }
    q
}

/// Looks records up across tables for dot-walks.
pub struct Resolver<'a> {
    pub tables: &'a HashMap<&'static str, Table>,
}

impl<'a> Resolver<'a> {
    fn by_id(&self, table: &str, sys_id: &str) -> Option<&'a Record> {
        self.tables
            .get(table)?
            .records
            .iter()
            .find(|r| r.sys_id == sys_id)
    }

    /// The value at `path`, or `None` when the path names no known field (the
    /// term is then ignored, as ServiceNow does).
    pub fn value<'r>(
        &self,
        table: &str,
        record: &'r Record,
        path: &[String],
    ) -> Option<Resolved<'r>>
    where
        'a: 'r,
    {
        let first = path.first()?;
        let fields = table_fields(table)?;
        if !fields.contains(&first.as_str()) {
            return None;
        }
        let v = record.get(first).unwrap_or(&Value::Empty);
        match (path.len(), v) {
            (1, v) => Some(Resolved::Here(v)),
            (
                2,
                Value::Ref {
                    table: t, sys_id, ..
                },
            ) => {
                let sub = &path[1];
                if !table_fields(t)?.contains(&sub.as_str()) {
                    return None;
                }
                Some(match self.by_id(t, sys_id).and_then(|r| r.get(sub)) {
                    Some(v) => Resolved::Here(v),
                    None => Resolved::Missing,
                })
            }
            (2, _) => Some(Resolved::Missing),
            _ => None,
        }
    }
}

pub enum Resolved<'r> {
    Here(&'r Value),
    Missing,
}

fn cmp_value(v: &Value, t: &Term) -> Option<Ordering> {
    match v {
        Value::DateTime(x) => t.time.map(|y| x.cmp(&y)),
        Value::Int(x) => t.num.and_then(|y| (*x as f64).partial_cmp(&y)),
        other => Some(
            other
                .raw()
                .to_ascii_lowercase()
                .as_str()
                .cmp(t.lower.as_str()),
        ),
    }
}

fn text(v: &Value) -> String {
    v.raw().to_ascii_lowercase()
}

fn matches(resolver: &Resolver<'_>, table: &str, r: &Record, t: &Term) -> bool {
    let v = match resolver.value(table, r, &t.path) {
        None => return true, // unknown field: ServiceNow ignores the term
        Some(Resolved::Missing) => &Value::Empty,
        Some(Resolved::Here(v)) => v,
    };
    let empty = match v {
        Value::Empty => true,
        Value::Str(s) => s.is_empty(),
        Value::Ref { sys_id, .. } => sys_id.is_empty(),
        _ => false,
    };
    match t.op {
        Op::IsEmpty => empty,
        Op::IsNotEmpty => !empty,
        Op::Eq => match v {
            Value::DateTime(_) | Value::Int(_) => cmp_value(v, t) == Some(Ordering::Equal),
            _ => v.raw().eq_ignore_ascii_case(&t.value),
        },
        Op::Ne => match v {
            Value::DateTime(_) | Value::Int(_) => cmp_value(v, t) != Some(Ordering::Equal),
            _ => !v.raw().eq_ignore_ascii_case(&t.value),
        },
        Op::Gt => !empty && cmp_value(v, t) == Some(Ordering::Greater),
        Op::Ge => !empty && matches!(cmp_value(v, t), Some(Ordering::Greater | Ordering::Equal)),
        Op::Lt => !empty && cmp_value(v, t) == Some(Ordering::Less),
        Op::Le => !empty && matches!(cmp_value(v, t), Some(Ordering::Less | Ordering::Equal)),
        Op::Like => text(v).contains(&t.lower),
        Op::NotLike => !text(v).contains(&t.lower),
        Op::StartsWith => text(v).starts_with(&t.lower),
        Op::EndsWith => text(v).ends_with(&t.lower),
        Op::In => t.list.contains(&text(v)),
        Op::NotIn => !t.list.contains(&text(v)),
        Op::Between => match &t.between {
            Some((lo, hi)) => {
                let lo_t = parse_term(&format!("x>={lo}"));
                let hi_t = parse_term(&format!("x<={hi}"));
                match (lo_t, hi_t) {
                    (Some(a), Some(b)) => {
                        matches!(cmp_value(v, &a), Some(Ordering::Greater | Ordering::Equal))
                            && matches!(cmp_value(v, &b), Some(Ordering::Less | Ordering::Equal))
                    }
                    _ => false,
                }
            }
            None => false,
        },
    }
}

impl Query {
    pub fn matches(&self, resolver: &Resolver<'_>, table: &str, r: &Record) -> bool {
        self.alternatives.iter().any(|clauses| {
            clauses
                .iter()
                .all(|any| any.iter().any(|t| matches(resolver, table, r, t)))
        })
    }

    /// The order keys that name known fields of `table`.
    pub fn known_order(&self, table: &str) -> Vec<(String, bool)> {
        let fields = table_fields(table).unwrap_or(&[]);
        self.order
            .iter()
            .filter(|(f, _)| fields.contains(&f.as_str()))
            .cloned()
            .collect()
    }
}

/// Compares two records on one field with the field's own ordering.
pub fn cmp_field(a: &Record, b: &Record, field: &str) -> Ordering {
    match (a.get(field), b.get(field)) {
        (Some(Value::DateTime(x)), Some(Value::DateTime(y))) => x.cmp(y),
        (Some(Value::Int(x)), Some(Value::Int(y))) => x.cmp(y),
        (x, y) => {
            let x = x.map(Value::display).unwrap_or_default();
            let y = y.map(Value::display).unwrap_or_default();
            x.cmp(&y)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(fields: Vec<(&'static str, Value)>) -> Record {
        Record {
            sys_id: "a".repeat(32),
            created: 0,
            fields,
        }
    }

    fn check(q: &str, r: &Record) -> bool {
        let tables = HashMap::new();
        parse(q).matches(&Resolver { tables: &tables }, "sysevent", r)
    }

    #[test]
    fn operators_and_boolean_structure() {
        let r = rec(vec![
            ("name", Value::Str("login.failed".into())),
            ("parm1", Value::Str("Abel.Tuter".into())),
            ("sys_created_on", Value::DateTime(1_700_000_000)),
        ]);
        assert!(check("name=login.failed", &r));
        assert!(check("name=LOGIN.FAILED", &r), "= is case-insensitive");
        assert!(!check("name!=login.failed", &r));
        assert!(check("nameSTARTSWITHlogin", &r));
        assert!(check("nameLIKEfail", &r));
        assert!(check("nameINlogin,login.failed", &r));
        assert!(!check("nameNOT INlogin,login.failed", &r));
        assert!(check("sys_created_on>=2023-11-14 22:13:20", &r));
        assert!(!check("sys_created_on>2023-11-14 22:13:20", &r));
        assert!(check("sys_created_on<2023-11-15", &r));
        assert!(check(
            "sys_created_on>=javascript:gs.dateGenerate('2023-11-14','22:13:20')",
            &r
        ));
        assert!(check(
            "sys_created_onBETWEEN2023-11-14 00:00:00@2023-11-15 00:00:00",
            &r
        ));
        assert!(check("name=logout^ORname=login.failed", &r));
        assert!(!check("name=logout^parm1=abel.tuter", &r));
        assert!(check("name=logout^NQparm1=abel.tuter", &r));
        assert!(check("parm2ISEMPTY", &r));
        assert!(!check("parm1ISEMPTY", &r));
    }

    #[test]
    fn unknown_fields_are_ignored_like_servicenow() {
        let r = rec(vec![("name", Value::Str("login".into()))]);
        assert!(
            check("nmae=logout", &r),
            "a misspelled field matches everything"
        );
        assert!(!check("nmae=logout^name=logout", &r));
    }

    #[test]
    fn order_clauses_are_collected_and_filtered_to_known_fields() {
        let q = parse("name=login^ORDERBYsys_created_on^ORDERBYDESCsys_id^ORDERBYbogus");
        assert_eq!(q.order.len(), 3);
        assert_eq!(
            q.known_order("sysevent"),
            vec![
                ("sys_created_on".to_string(), false),
                ("sys_id".to_string(), true)
            ]
        );
    }
}

#[cfg(test)]
mod script_tests {
    use super::*;

    #[test]
    fn session_values_and_relative_dates_are_evaluated() {
        // 2024-03-10 15:30:00 UTC
        let now = 1_710_084_600;
        let ctx = ScriptContext {
            user_sys_id: "u1",
            user_name: "svc",
            now,
        };
        let q = "user=javascript:gs.getUserID()^sys_created_on>=javascript:gs.daysAgoStart(3)^ORuser_name=javascript:gs.getUserName()";
        assert_eq!(
            evaluate_scripts(q, &ctx),
            "user=u1^sys_created_on>=2024-03-07 00:00:00^ORuser_name=svc"
        );
        for (script, want) in [
            ("javascript:gs.daysAgo(1)", "2024-03-09 15:30:00"),
            ("javascript:gs.hoursAgo(2)", "2024-03-10 13:30:00"),
            ("javascript:gs.minutesAgo(30)", "2024-03-10 15:00:00"),
            ("javascript:gs.beginningOfToday()", "2024-03-10 00:00:00"),
        ] {
            assert_eq!(evaluate_scripts(script, &ctx), want);
        }
        // Unknown or malformed calls stay as written (and match nothing).
        for kept in [
            "javascript:gs.nowDateTime()",
            "javascript:gs.daysAgo(x)",
            "javascript:gs.daysAgo(3",
        ] {
            assert_eq!(evaluate_scripts(kept, &ctx), kept);
        }
    }
}
