//! Moving one connection out of a deployment made before the event plane:
//! its cursors, then its events (oldest first, in chunks), from D1's
//! `cursors` and `events` tables into this object and the archive, each
//! chunk deleted from D1 once the object has it. A chunk moved twice (the
//! worker killed between the object's commit and D1's delete) lands on the
//! same archive key, whose page row it finds: nothing is counted twice.

use serde::Deserialize;
use snc_core::clock::parse_rfc3339;
use snc_core::pull::archive;
use snc_core::pull::cursor::Key;
use snc_core::pull::events::{servicenow_time, Event, Kind, RawRecord, Target};
use worker::{Bucket, D1Database, Result};

use snc_core::pull::index::{self, IndexedEvent};

use super::plane::{LegacyCursor, Plane};
use crate::d1::{n, s};

/// Legacy events moved per D1 read.
const CHUNK: u32 = 2_000;
/// Chunks moved per alarm, inside the invocation's limits.
const CHUNKS_PER_SLICE: u32 = 10;

#[derive(Deserialize)]
struct LegacyEvent {
    source_table: String,
    sys_id: String,
    occurred_at: String,
    kind: String,
    actor: Option<String>,
    source_ip: Option<String>,
    target_table: Option<String>,
    target_record: Option<String>,
    target_field: Option<String>,
    old_value: Option<String>,
    new_value: Option<String>,
    raw: String,
}

impl LegacyEvent {
    fn into_event(self, connection_id: &str) -> Event {
        let target = (self.target_table.is_some()
            || self.target_record.is_some()
            || self.target_field.is_some())
        .then_some(Target {
            table: self.target_table,
            record: self.target_record,
            field: self.target_field,
        });
        Event {
            id: format!("{}:{}", self.source_table, self.sys_id),
            connection_id: connection_id.to_string(),
            occurred_at: self.occurred_at,
            kind: Kind::parse(&self.kind).unwrap_or(Kind::Other),
            actor: self.actor,
            source_ip: self.source_ip,
            target,
            old_value: self.old_value,
            new_value: self.new_value,
            source_table: self.source_table,
            raw: RawRecord::parse(&self.raw).unwrap_or_else(RawRecord::empty),
            truncated_fields: Vec::new(),
        }
    }
}

/// Whether the connection has nothing left in D1's old tables. Moves up to
/// `CHUNKS_PER_SLICE` chunks; `false` means call again.
pub async fn step(plane: &Plane, bucket: &Bucket, db: &D1Database, id: &str) -> Result<bool> {
    if plane.meta("upgraded")?.is_some() {
        return Ok(true);
    }
    let cursors: Vec<LegacyCursor> = db
        .prepare("SELECT source_table, created_on, sys_id, backfill_total, caught_up, page_size FROM cursors WHERE connection_id = ?1")
        .bind(&[s(id)])?
        .all()
        .await?
        .results()?;
    for c in &cursors {
        plane.import_cursor(c)?;
    }
    for _ in 0..CHUNKS_PER_SLICE {
        let rows: Vec<LegacyEvent> = db
            .prepare("SELECT source_table, sys_id, occurred_at, kind, actor, source_ip, target_table, target_record, target_field, old_value, new_value, raw FROM events WHERE connection_id = ?1 ORDER BY occurred_at, source_table, sys_id LIMIT ?2")
            .bind(&[s(id), n(i64::from(CHUNK))])?
            .all()
            .await?
            .results()?;
        let Some(last) = rows.last() else {
            db.batch(vec![
                db.prepare("DELETE FROM cursors WHERE connection_id = ?1")
                    .bind(&[s(id)])?,
                db.prepare("DELETE FROM pull_runs WHERE connection_id = ?1")
                    .bind(&[s(id)])?,
            ])
            .await?;
            plane.set_meta("upgraded", "1")?;
            return Ok(true);
        };
        let bound = (
            last.occurred_at.clone(),
            last.source_table.clone(),
            last.sys_id.clone(),
        );
        let mut by_table: Vec<(String, Vec<Event>)> = Vec::new();
        for row in rows {
            let e = row.into_event(id);
            match by_table.iter_mut().find(|(t, _)| *t == e.source_table) {
                Some((_, list)) => list.push(e),
                None => by_table.push((e.source_table.clone(), vec![e])),
            }
        }
        for (table, events) in &by_table {
            move_events(plane, bucket, id, table, events).await?;
        }
        db.prepare("DELETE FROM events WHERE connection_id = ?1 AND (occurred_at, source_table, sys_id) <= (?2, ?3, ?4)")
            .bind(&[s(id), s(&bound.0), s(&bound.1), s(&bound.2)])?
            .run()
            .await?;
    }
    Ok(false)
}

fn key_of(e: &Event) -> Key {
    Key {
        created_on: parse_rfc3339(&e.occurred_at)
            .map(servicenow_time)
            .unwrap_or_default(),
        sys_id: e.sys_id().to_string(),
    }
}

async fn move_events(
    plane: &Plane,
    bucket: &Bucket,
    id: &str,
    table: &str,
    events: &[Event],
) -> Result<()> {
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Ok(());
    };
    let ids: Vec<&str> = events.iter().map(Event::sys_id).collect();
    let key = archive::page_key(id, table, &key_of(first), &key_of(last), &ids);
    let object = crate::archive::encode(events).await?;
    let bytes = object.bytes.len();
    let members = object.members;
    bucket.put(&key, object.bytes).execute().await?;
    let entries: Vec<IndexedEvent> = events
        .iter()
        .map(|e| IndexedEvent {
            occurred_at: parse_rfc3339(&e.occurred_at).unwrap_or(0),
            sys_id: e.sys_id(),
            kind: e.kind.as_str(),
            actor: e.actor.as_deref(),
        })
        .collect();
    plane.index_page(table, &key, bytes, &members, &entries)?;
    // The carried-over cursor has no read of its own: the first run reads
    // the overlap before it again, and must find these there.
    let cursor_at = plane
        .cursors()?
        .into_iter()
        .find(|c| c.source_table == table)
        .and_then(|c| c.created_on)
        .and_then(|t| snc_core::pull::events::parse_servicenow_time(&t));
    if let Some(at) = cursor_at {
        if let Some(keys) = index::recent_keys(&entries, at, at) {
            plane.keep_keys(table, &key, &keys)?;
        }
    }
    Ok(())
}
