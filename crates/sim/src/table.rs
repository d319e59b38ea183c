//! The Table API: `GET /api/now/[v1|v2/]table/{table}` with ServiceNow's
//! parameters, paging headers, value renderings and error bodies.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::io::Write;

use crate::conditions::acl_hidden;
use crate::data::{table_fields, Record, Table, Value, EVENT_TABLES};
use crate::query::{self, cmp_field, Resolved, Resolver};

/// The largest page ServiceNow serves (and its default).
pub const MAX_LIMIT: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisplayMode {
    Raw,
    Display,
    All,
}

#[derive(Debug)]
pub struct TableRequest {
    pub table: String,
    /// True for `/api/now/v2/...`: an empty result is 200, not v1's 404.
    pub v2: bool,
    pub query: String,
    pub limit: usize,
    pub offset: usize,
    pub fields: Option<Vec<String>>,
    pub display: DisplayMode,
    pub exclude_reference_link: bool,
    pub no_count: bool,
    pub suppress_pagination_header: bool,
    /// Every parameter as sent, to rebuild the `Link` URLs.
    pub params: Vec<(String, String)>,
}

fn truthy(v: Option<&String>) -> bool {
    v.is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

impl TableRequest {
    pub fn from_params(table: &str, v2: bool, params: Vec<(String, String)>) -> Self {
        let map: HashMap<String, String> = params.iter().cloned().collect();
        let limit = map
            .get("sysparm_limit")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(MAX_LIMIT)
            .min(MAX_LIMIT);
        TableRequest {
            table: table.to_string(),
            v2,
            query: map.get("sysparm_query").cloned().unwrap_or_default(),
            limit,
            offset: map
                .get("sysparm_offset")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0),
            fields: map
                .get("sysparm_fields")
                .filter(|f| !f.trim().is_empty())
                .map(|f| {
                    f.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                }),
            display: match map
                .get("sysparm_display_value")
                .map(|s| s.to_ascii_lowercase())
                .as_deref()
            {
                Some("true") => DisplayMode::Display,
                Some("all") => DisplayMode::All,
                _ => DisplayMode::Raw,
            },
            exclude_reference_link: truthy(map.get("sysparm_exclude_reference_link")),
            no_count: truthy(map.get("sysparm_no_count")),
            suppress_pagination_header: truthy(map.get("sysparm_suppress_pagination_header")),
            params,
        }
    }
}

/// What the handler sends back.
pub struct TablePage {
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

pub fn error_body(message: &str, detail: Option<&str>) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "error": { "message": message, "detail": detail },
        "status": "failure",
    }))
    .unwrap_or_default()
}

/// Who is asking: the Table API only trims by ACL for the connector's user.
pub struct Viewer<'a> {
    pub user_sys_id: &'a str,
    pub user_name: &'a str,
    /// The instance's clock, for `gs.daysAgo()` and the like.
    pub now: i64,
    pub not_admin: bool,
    pub acl_hidden_fraction: f64,
}

fn hidden(viewer: &Viewer<'_>, table: &str, r: &Record) -> bool {
    if viewer.not_admin && table == "sys_user_has_role" {
        let is_admin_grant =
            matches!(r.get("role"), Some(Value::Ref { display, .. }) if display == "admin");
        let of_viewer = matches!(r.get("user"), Some(Value::Ref { sys_id, .. }) if sys_id == viewer.user_sys_id);
        if is_admin_grant && of_viewer {
            return true;
        }
    }
    EVENT_TABLES.contains(&table) && acl_hidden(&r.sys_id, viewer.acl_hidden_fraction)
}

pub fn serve(
    tables: &HashMap<&'static str, Table>,
    req: &TableRequest,
    viewer: &Viewer<'_>,
    base_url: &str,
) -> TablePage {
    let Some(table) = tables.get(req.table.as_str()) else {
        return TablePage {
            status: 400,
            body: error_body(&format!("Invalid table {}", req.table), None),
            headers: vec![],
        };
    };
    let resolver = Resolver { tables };
    // `javascript:gs.…()` values are evaluated for the session's user and
    // the instance's clock, as ServiceNow does.
    let session_query = query::evaluate_scripts(
        &req.query,
        &query::ScriptContext {
            user_sys_id: viewer.user_sys_id,
            user_name: viewer.user_name,
            now: viewer.now,
        },
    );
    let q = query::parse(&session_query);
    let order = q.known_order(&req.table);
    let mut matched: Vec<&Record> = table
        .records
        .iter()
        .filter(|r| q.matches(&resolver, &req.table, r))
        .collect();
    // Stored order is (sys_created_on, sys_id): asking for exactly that needs no sort.
    let presorted = order.is_empty()
        || order == [("sys_created_on".to_string(), false)].as_slice()
        || order
            == [
                ("sys_created_on".to_string(), false),
                ("sys_id".to_string(), false),
            ]
            .as_slice();
    let unique_tail = order.last().is_some_and(|(f, _)| f == "sys_id");
    if !presorted {
        matched.sort_by(|a, b| {
            for (field, desc) in &order {
                let o = cmp_field(a, b, field);
                if o != Ordering::Equal {
                    return if *desc { o.reverse() } else { o };
                }
            }
            Ordering::Equal
        });
    }
    if !order.is_empty() && !unique_tail {
        // Without sys_id as the last key, rows that tie are in no promised
        // order, and a real database may return them differently per page.
        // Shuffle each run of ties by a per-request salt to keep clients honest.
        let salt = req.offset as u64 ^ 0x9E37_79B9_7F4A_7C15;
        let mut i = 0;
        while i < matched.len() {
            let mut j = i + 1;
            while j < matched.len()
                && order
                    .iter()
                    .all(|(f, _)| cmp_field(matched[i], matched[j], f) == Ordering::Equal)
            {
                j += 1;
            }
            if j - i > 1 {
                matched[i..j].sort_by_key(|r| tie_key(&r.sys_id, salt));
            }
            i = j;
        }
    }
    let total = matched.len();
    let page: Vec<&Record> = matched
        .iter()
        .skip(req.offset)
        .take(req.limit)
        .filter(|r| !hidden(viewer, &req.table, r))
        .copied()
        .collect();

    let mut headers = Vec::new();
    if !req.no_count {
        headers.push(("X-Total-Count", total.to_string()));
    }
    if !req.suppress_pagination_header {
        headers.push(("Link", link_header(base_url, req, total)));
    }
    if page.is_empty() && !req.v2 {
        return TablePage {
            status: 404,
            body: error_body(
                "No Record found",
                Some("Records matching query not found. Check query parameter or offset parameter"),
            ),
            headers,
        };
    }
    let fields: Vec<String> = match &req.fields {
        Some(f) => f
            .iter()
            .filter(|f| {
                let first = f.split('.').next().unwrap_or("");
                table_fields(&req.table).is_some_and(|known| known.contains(&first))
            })
            .cloned()
            .collect(),
        None => table_fields(&req.table)
            .unwrap_or(&[])
            .iter()
            .map(|s| s.to_string())
            .collect(),
    };
    let body = render(&resolver, &req.table, &page, &fields, req, base_url);
    TablePage {
        status: 200,
        body,
        headers,
    }
}

fn tie_key(sys_id: &str, salt: u64) -> u64 {
    let head = sys_id
        .get(..16)
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or(0);
    (head ^ salt).wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

fn link_header(base_url: &str, req: &TableRequest, total: usize) -> String {
    let url_at = |offset: usize| {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &req.params {
            if k != "sysparm_offset" && k != "sysparm_limit" {
                ser.append_pair(k, v);
            }
        }
        ser.append_pair("sysparm_limit", &req.limit.to_string());
        ser.append_pair("sysparm_offset", &offset.to_string());
        let version = if req.v2 { "v2/" } else { "" };
        format!(
            "{base_url}/api/now/{version}table/{}?{}",
            req.table,
            ser.finish()
        )
    };
    let limit = req.limit.max(1);
    let mut links = vec![format!("<{}>;rel=\"first\"", url_at(0))];
    if req.offset > 0 {
        links.push(format!(
            "<{}>;rel=\"prev\"",
            url_at(req.offset.saturating_sub(limit))
        ));
    }
    if req.offset + limit < total {
        links.push(format!("<{}>;rel=\"next\"", url_at(req.offset + limit)));
    }
    let last = if total == 0 {
        0
    } else {
        (total - 1) / limit * limit
    };
    links.push(format!("<{}>;rel=\"last\"", url_at(last)));
    links.join(",")
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Integers display with thousands separators, as a US-format user sees them.
fn display_of(v: &Value) -> String {
    match v {
        Value::Int(i) => {
            let digits = i.unsigned_abs().to_string();
            let mut out = String::new();
            for (n, c) in digits.chars().enumerate() {
                if n > 0 && (digits.len() - n) % 3 == 0 {
                    out.push(',');
                }
                out.push(c);
            }
            if *i < 0 {
                format!("-{out}")
            } else {
                out
            }
        }
        other => other.display(),
    }
}

fn render_value(out: &mut Vec<u8>, v: &Value, req: &TableRequest, base_url: &str) {
    let link = match v {
        Value::Ref { table, sys_id, .. } if !req.exclude_reference_link && !sys_id.is_empty() => {
            Some(format!("{base_url}/api/now/table/{table}/{sys_id}"))
        }
        _ => None,
    };
    match (req.display, link) {
        (DisplayMode::Raw, None) => json_str(out, &v.raw()),
        (DisplayMode::Display, None) => json_str(out, &display_of(v)),
        (DisplayMode::Raw, Some(link)) => {
            out.extend_from_slice(b"{\"link\":");
            json_str(out, &link);
            out.extend_from_slice(b",\"value\":");
            json_str(out, &v.raw());
            out.push(b'}');
        }
        (DisplayMode::Display, Some(link)) => {
            out.extend_from_slice(b"{\"display_value\":");
            json_str(out, &display_of(v));
            out.extend_from_slice(b",\"link\":");
            json_str(out, &link);
            out.push(b'}');
        }
        (DisplayMode::All, link) => {
            out.extend_from_slice(b"{\"display_value\":");
            json_str(out, &display_of(v));
            if let Some(link) = link {
                out.extend_from_slice(b",\"link\":");
                json_str(out, &link);
            }
            out.extend_from_slice(b",\"value\":");
            json_str(out, &v.raw());
            out.push(b'}');
        }
    }
}

fn render(
    resolver: &Resolver<'_>,
    table: &str,
    page: &[&Record],
    fields: &[String],
    req: &TableRequest,
    base_url: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(page.len() * 600 + 16);
    out.extend_from_slice(b"{\"result\":[");
    let paths: Vec<Vec<String>> = fields
        .iter()
        .map(|f| f.split('.').map(str::to_string).collect())
        .collect();
    for (i, r) in page.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        for (j, (name, path)) in fields.iter().zip(&paths).enumerate() {
            if j > 0 {
                out.push(b',');
            }
            json_str(&mut out, name);
            out.push(b':');
            let v = match resolver.value(table, r, path) {
                Some(Resolved::Here(v)) => v,
                _ => &Value::Empty,
            };
            render_value(&mut out, v, req, base_url);
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    let _ = out.flush();
    out
}
