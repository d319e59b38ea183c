//! `GET /audit`: the audit log, newest first, with `from`/`to` and paging.

use snc_core::api::access::AuditPage;
use snc_core::clock::parse_rfc3339;
use snc_core::problem::{Problem, ProblemCode};
use worker::{Env, Request};

use super::paging::{self, field_error};
use crate::d1::audit::AuditLog;
use crate::respond::{self, Answer};

struct Query {
    from: Option<i64>,
    to: Option<i64>,
    limit: u32,
    after: Option<(i64, String)>,
}

fn query(req: &Request) -> std::result::Result<Query, Problem> {
    let url = req.url().map_err(|_| Problem::new(ProblemCode::Internal))?;
    let mut q = Query {
        from: None,
        to: None,
        limit: 100,
        after: None,
    };
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "from" | "to" => {
                let t = parse_rfc3339(&v).ok_or_else(|| {
                    field_error(&k, "Use an RFC 3339 time such as 2026-11-27T08:00:00Z.")
                })?;
                if k == "from" {
                    q.from = Some(t)
                } else {
                    q.to = Some(t)
                }
            }
            "limit" => q.limit = paging::limit(&v)?,
            "cursor" => q.after = Some(paging::decode_cursor(&v)?),
            _ => {}
        }
    }
    Ok(q)
}

pub async fn list(req: Request, env: &Env) -> Answer {
    let q = query(&req)?;
    let mut entries = AuditLog::new(env.d1("DB")?)
        .list(
            q.from,
            q.to,
            q.after.as_ref().map(|(a, i)| (*a, i.as_str())),
            q.limit,
        )
        .await?;
    let more = entries.len() > q.limit as usize;
    entries.truncate(q.limit as usize);
    let next_cursor = entries
        .last()
        .filter(|_| more)
        .map(|e| paging::encode_cursor(&(e.at_ms, &e.entry.id)));
    respond::json(
        200,
        &AuditPage {
            entries: entries.into_iter().map(|e| e.entry).collect(),
            next_cursor,
        },
    )
}
