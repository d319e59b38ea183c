//! `/connections/{id}/accounts`: the instance's accounts with their roles
//! and groups, filtered by role or active, paged by user name.

use serde_json::json;
use snc_core::problem::{Problem, ProblemCode};
use worker::{Env, Request};

use super::paging::{self, field_error};
use crate::connection_object::{self, AccountsQuery};
use crate::d1::connections::Store;
use crate::respond::{self, Answer};

fn query(req: &Request) -> std::result::Result<AccountsQuery, Problem> {
    let url = req.url().map_err(|_| Problem::new(ProblemCode::Internal))?;
    let mut q = AccountsQuery {
        limit: 100,
        ..AccountsQuery::default()
    };
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "role" if !v.is_empty() && v.len() <= 100 => q.role = Some(v.to_string()),
            "role" => return Err(field_error("role", "Name a role, such as admin.")),
            "active" => {
                q.active = Some(match v.as_ref() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(field_error("active", "Use active=true or active=false.")),
                })
            }
            "limit" => q.limit = paging::limit(&v)?,
            "cursor" => q.after = Some(paging::decode_cursor(&v)?),
            _ => {}
        }
    }
    Ok(q)
}

pub async fn list(req: Request, env: &Env, id: &str) -> Answer {
    if Store::new(env.d1("DB")?).get(id).await?.is_none() {
        return respond::fail(ProblemCode::NotFound, "There is no such connection.");
    }
    let q = query(&req)?;
    let accounts = connection_object::accounts(env, id, &q).await?;
    let next_cursor = (accounts.len() as u32 == q.limit)
        .then(|| {
            accounts
                .last()
                .map(|a| paging::encode_cursor(&(&a.user_name, &a.sys_id)))
        })
        .flatten();
    let shown: Vec<serde_json::Value> = accounts
        .iter()
        .map(|a| {
            json!({
                "user_name": a.user_name,
                "name": a.name,
                "email": a.email,
                "active": a.active,
                "locked_out": a.locked_out,
                "web_service_access_only": a.web_service_only,
                "last_login_at": a.last_login_at,
                "roles": a.roles,
                "groups": a.groups,
                "privileged": a.privileged,
            })
        })
        .collect();
    respond::json(
        200,
        &json!({ "accounts": shown, "next_cursor": next_cursor }),
    )
}
