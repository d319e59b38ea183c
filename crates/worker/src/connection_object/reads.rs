//! Reading a connection's events back: from the index while they are in
//! the hot window, from their archived pages before it, in the API's order
//! with its cursor.

use serde::{Deserialize, Serialize};
use snc_core::pull::archive;
use snc_core::pull::events::Event;
use worker::{console_log, Bucket, Result};

use super::plane::{IndexQuery, Order, Plane};

/// An event's place in the listing order.
fn position(e: &Event) -> Option<(i64, &str, &str)> {
    let (table, sys_id) = e.id.split_once(':')?;
    Some((
        snc_core::clock::parse_rfc3339(&e.occurred_at)?,
        table,
        sys_id,
    ))
}

/// The events a query selects over the whole retention: the index's (the
/// hot window, and anything stored since the last trim), then, for a range
/// reaching before the hot window, the archived pages holding events no
/// longer indexed, read whole, newest (or oldest) pages first, until no
/// unread page can hold an event that would make the answer.
pub(super) async fn read_events(
    plane: &Plane,
    bucket: &Bucket,
    q: &IndexQuery,
    budget: u32,
) -> Result<EventsRead> {
    let mut out = read_indexed(plane, bucket, q).await?;
    let done = |events| EventsRead {
        events,
        resume: None,
    };
    let Some(hot_from) = plane.hot_from()? else {
        return Ok(done(out));
    };
    let lower = match (q.from, q.not_before) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    if lower.is_some_and(|l| l >= hot_from) {
        return Ok(done(out));
    }
    let mut upper = q.to.map_or(hot_from, |t| t.min(hot_from));
    let order = if q.newest_first {
        Order::NewestFirst
    } else {
        Order::OldestFirst
    };
    // A next page of the listing starts at its cursor: pages wholly on the
    // other side of it are not read again.
    let mut lower = lower;
    if let Some((t, ..)) = &q.after {
        match order {
            Order::NewestFirst => upper = upper.min(t + 1),
            Order::OldestFirst => lower = Some(lower.map_or(*t, |l| l.max(*t))),
        }
    }
    let limit = q.limit as usize;
    // Whether an event comes after the cursor in the listing's order.
    let beyond =
        |a: (i64, &str, &str), c: (i64, &str, &str)| if q.newest_first { a < c } else { a > c };
    let after = q
        .after
        .as_ref()
        .map(|(t, table, sys_id)| (*t, table.as_str(), sys_id.as_str()));
    let cold = archive::ColdRead {
        order,
        upper,
        lower,
        after: q.after.as_ref().map(|a| a.0),
        budget,
    };
    let mut read = 0;
    let mut stopped_at = None;
    for page in plane.cold_pages(lower, upper, order)? {
        // Enough already, and this page (and every later one) lies wholly
        // past the last event kept.
        if out.len() >= limit {
            let edge = out.get(limit - 1).and_then(position).map_or(0, |p| p.0);
            let past = match order {
                Order::NewestFirst => page.last_at < edge,
                Order::OldestFirst => page.first_at > edge,
            };
            if past {
                break;
            }
        }
        // The read's budget is spent: the answer ends where every event is
        // known (pages come in the order of their newest, or oldest, event:
        // nothing beyond this page's edge can hide in a page not read) and
        // says where to go on, even when it holds few events or none.
        if let Some(edge) = cold.stop_before(read, page.first_at, page.last_at) {
            stopped_at = Some(edge);
            break;
        }
        read += 1;
        let lines = crate::archive::member_lines(bucket, &page.key, 0, None).await?;
        for line in lines {
            let Some(e) = archive::read_line(&page.key, &line) else {
                continue;
            };
            let Some(at) = position(&e) else { continue };
            let wanted = at.0 < upper
                && lower.is_none_or(|l| at.0 >= l)
                && q.kind.as_deref().is_none_or(|k| e.kind.as_str() == k)
                && q.actor
                    .as_deref()
                    .is_none_or(|a| e.actor.as_deref() == Some(a))
                && after.is_none_or(|c| beyond(at, c));
            if wanted {
                out.push(e);
            }
        }
        out.sort_by(|a, b| {
            let (a, b) = (position(a), position(b));
            if q.newest_first {
                b.cmp(&a)
            } else {
                a.cmp(&b)
            }
        });
        // A page stored again after a trim would be both indexed and cold.
        out.dedup_by(|a, b| a.id == b.id && a.occurred_at == b.occurred_at);
        out.truncate(limit);
    }
    if read > 0 {
        console_log!("events: {read} archived page(s) read for the range before the hot window");
    }
    let mut resume = None;
    if let Some(edge) = stopped_at {
        // Only what lies wholly on this side of the edge is complete.
        out.retain(|e| position(e).is_some_and(|p| cold.complete(edge, p.0)));
        if out.len() < limit {
            resume = Some(cold.resume(edge));
        }
    }
    Ok(EventsRead {
        events: out,
        resume,
    })
}

/// An events read: the events, and where the next read starts when the
/// read's budget of archived pages ran out before the answer was full.
#[derive(Serialize, Deserialize)]
pub struct EventsRead {
    pub events: Vec<Event>,
    #[serde(default)]
    pub resume: Option<(i64, String, String)>,
}

/// The events the index selects, read whole from their archive members:
/// one ranged read per member, in the index's order.
async fn read_indexed(plane: &Plane, bucket: &Bucket, q: &IndexQuery) -> Result<Vec<Event>> {
    let rows = plane.events(q)?;
    let mut members: Vec<((String, u32), Vec<String>)> = Vec::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let line = usize::try_from(row.line).unwrap_or(0);
        let Some((start, end)) = archive::member_range(&row.members, line) else {
            console_log!(
                "index row {}:{} has no member",
                row.source_table,
                row.sys_id
            );
            continue;
        };
        let at = match members
            .iter()
            .position(|((k, s), _)| *k == row.key && *s == start)
        {
            Some(at) => at,
            None => {
                let lines = crate::archive::member_lines(bucket, &row.key, start, end).await?;
                members.push(((row.key.clone(), start), lines));
                members.len() - 1
            }
        };
        let lines = &members[at].1;
        match lines
            .get(line % archive::LINES_PER_MEMBER)
            .and_then(|l| archive::read_line(&row.key, l))
        {
            Some(e) => out.push(e),
            None => console_log!(
                "archive line of {}:{} unreadable",
                row.source_table,
                row.sys_id
            ),
        }
    }
    Ok(out)
}

// ---- the worker's side --------------------------------------------------
