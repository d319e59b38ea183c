//! Reading a connection's events back: the index names the archive members
//! that can match (by time range, kind and actor), a read opens them a few
//! at a time in the listing's order, filters their lines exactly, and stops
//! where no unopened member can hold an event the answer would keep, or
//! where its budget of members runs out (then it answers where to go on).

use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};
use snc_core::pull::archive::{self, BudgetedRead};
use snc_core::pull::events::Event;
use snc_core::pull::index;
use worker::{console_log, Bucket, Result};

use super::plane::{IndexQuery, MemberFilter, MemberSpot, Order, Plane};

/// An event's place in the listing order.
fn position(e: &Event) -> Option<(i64, &str, &str)> {
    let (table, sys_id) = e.id.split_once(':')?;
    Some((
        snc_core::clock::parse_rfc3339(&e.occurred_at)?,
        table,
        sys_id,
    ))
}

/// The events a query selects over the whole retention, in its order,
/// after its cursor, at most its limit; opening at most `budget` members
/// (more only where the read could not otherwise move past its cursor).
pub(super) async fn read_events(
    plane: &Plane,
    bucket: &Bucket,
    q: &IndexQuery,
    budget: u32,
) -> Result<EventsRead> {
    let mut lower = q.lower();
    let mut upper = q.to.unwrap_or(i64::MAX);
    let order = if q.newest_first {
        Order::NewestFirst
    } else {
        Order::OldestFirst
    };
    // A next page of the listing starts at its cursor: members wholly on
    // the other side of it are not opened again.
    if let Some((t, ..)) = &q.after {
        match order {
            Order::NewestFirst => upper = upper.min(t.saturating_add(1)),
            Order::OldestFirst => lower = Some(lower.map_or(*t, |l| l.max(*t))),
        }
    }
    let limit = q.limit as usize;
    let keep = index::LineFilter {
        lower,
        upper,
        kind: q.kind.as_deref(),
        actor: q.actor.as_deref(),
        after: q
            .after
            .as_ref()
            .map(|(t, table, sys_id)| (*t, table.as_str(), sys_id.as_str())),
        order,
    };
    let walk = BudgetedRead {
        order,
        upper,
        lower,
        after: q.after.as_ref().map(|a| a.0),
        budget,
    };
    let filter = MemberFilter {
        lower,
        upper,
        kind: q.kind.as_deref(),
        actor: q.actor.as_deref(),
        order,
    };
    let mut out: Vec<Event> = Vec::new();
    let mut opened = 0u32;
    let mut stopped_at = None;
    let mut last: Option<MemberSpot> = None;
    'walk: loop {
        let wanted = limit.saturating_sub(out.len());
        let spots = plane.members(&filter, last.as_ref(), index::members_at_once(wanted))?;
        let Some(tail) = spots.last() else { break };
        last = Some(tail.clone());
        let mut open = Vec::with_capacity(spots.len());
        let mut ended = false;
        for spot in spots {
            // Enough already, and this member (and every later one) lies
            // wholly past the last event kept.
            if out.len() >= limit {
                let edge = out.get(limit - 1).and_then(position).map_or(0, |p| p.0);
                if index::past_edge(order, spot.first_at, spot.last_at, edge) {
                    ended = true;
                    break;
                }
            }
            // The budget is spent: the answer ends where every event is
            // known (members come in the order of their newest, or oldest,
            // event: nothing beyond this one's edge hides in one not opened).
            if let Some(edge) = walk.stop_before(opened, spot.first_at, spot.last_at) {
                stopped_at = Some(edge);
                ended = true;
                break;
            }
            opened += 1;
            open.push(spot);
        }
        let read = try_join_all(open.iter().map(|spot| open_member(bucket, spot))).await?;
        for (spot, lines) in open.iter().zip(read) {
            for line in lines {
                let Some(e) = archive::read_line(&spot.key, &line) else {
                    continue;
                };
                let Some(at) = position(&e) else { continue };
                if keep.keeps(at, e.kind.as_str(), e.actor.as_deref()) {
                    out.push(e);
                }
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
        // The same record stored twice (never by design) is listed once.
        out.dedup_by(|a, b| a.id == b.id && a.occurred_at == b.occurred_at);
        out.truncate(limit);
        if ended {
            break 'walk;
        }
    }
    let mut resume = None;
    if let Some(edge) = stopped_at {
        // Only what lies wholly on this side of the edge is complete.
        out.retain(|e| position(e).is_some_and(|p| walk.complete(edge, p.0)));
        if out.len() < limit {
            resume = Some(walk.resume(edge));
        }
    }
    Ok(EventsRead {
        events: out,
        resume,
    })
}

/// One member's lines, read with a ranged read of its object.
async fn open_member(bucket: &Bucket, spot: &MemberSpot) -> Result<Vec<String>> {
    let Some((start, end)) = archive::member_range(&spot.offsets, spot.first_line()) else {
        console_log!(
            "index: member {} of {} has no offsets",
            spot.member,
            spot.key
        );
        return Ok(Vec::new());
    };
    crate::archive::member_lines(bucket, &spot.key, start, end).await
}

/// The events of one member's lines, with their times, for the retention's
/// trim of a member reaching across its cutoff.
pub(super) async fn member_times(bucket: &Bucket, spot: &MemberSpot) -> Result<Vec<i64>> {
    Ok(open_member(bucket, spot)
        .await?
        .iter()
        .filter_map(|l| archive::read_line(&spot.key, l))
        .filter_map(|e| snc_core::clock::parse_rfc3339(&e.occurred_at))
        .collect())
}

/// An events read: the events, and where the next read starts when the
/// read's budget of members ran out before the answer was full.
#[derive(Serialize, Deserialize)]
pub struct EventsRead {
    pub events: Vec<Event>,
    #[serde(default)]
    pub resume: Option<(i64, String, String)>,
}
