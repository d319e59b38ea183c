//! The R2 side of the archive: page objects written, read by member, and
//! deleted. Keys, line layout and member ranges are core's
//! (`snc_core::pull::archive`); compression is `gzip`'s.

use std::borrow::Borrow;
use std::cell::Cell;

use snc_core::pull::archive;
use snc_core::pull::events::Event;
use worker::{console_log, Bucket, Range, Result};

use crate::gzip;

/// One page's object: its bytes and its members' offsets as the index keeps them.
pub struct PageObject {
    pub bytes: Vec<u8>,
    pub members: String,
}

/// Encodes a page's object, letting the runtime run every few members: the
/// next page's answer, asked for before this page was read, is taken off the
/// socket meanwhile instead of waiting (the instance's side blocked on a
/// full socket) until the page is stored.
pub async fn encode<E: Borrow<Event>>(events: &[E]) -> Result<PageObject> {
    // About 105 bytes an event compressed, 500 before: sized once, so
    // neither buffer is copied as it grows.
    let mut bytes = Vec::with_capacity(events.len() * 128);
    let mut text = Vec::with_capacity(archive::LINES_PER_MEMBER * 640);
    let mut offsets = Vec::new();
    for (n, member) in events.chunks(archive::LINES_PER_MEMBER).enumerate() {
        if n % MEMBERS_BETWEEN_YIELDS == MEMBERS_BETWEEN_YIELDS - 1 {
            worker::Delay::from(std::time::Duration::ZERO).await;
        }
        text.clear();
        archive::write_member(member, &mut text);
        offsets.push(bytes.len() as u32);
        gzip::compress_into(&text, &mut bytes)?;
    }
    Ok(PageObject {
        bytes,
        members: archive::members_text(&offsets),
    })
}

/// About 10 ms of compression between turns of the event loop.
const MEMBERS_BETWEEN_YIELDS: usize = 8;

/// The lines of one member of an object (empty if the object is gone).
pub async fn member_lines(
    bucket: &Bucket,
    key: &str,
    start: u32,
    end: Option<u32>,
) -> Result<Vec<String>> {
    let range = match end {
        Some(end) => Range::OffsetWithLength {
            offset: u64::from(start),
            length: u64::from(end.saturating_sub(start)),
        },
        None => Range::OffsetToEnd {
            offset: u64::from(start),
        },
    };
    let Some(object) = bucket.get(key).range(range).execute().await? else {
        console_log!("archive object {key} is missing");
        return Ok(Vec::new());
    };
    let Some(body) = object.body() else {
        return Ok(Vec::new());
    };
    let text = gzip::decompress(&body.bytes().await?)?;
    Ok(archive::lines(&text)
        .into_iter()
        .map(str::to_string)
        .collect())
}

pub async fn delete(bucket: &Bucket, keys: &[String]) -> Result<()> {
    for chunk in keys.chunks(1000) {
        bucket.delete_multiple(chunk.to_vec()).await?;
    }
    Ok(())
}

thread_local! {
    /// Purge steps left to fail (`TEST_PURGE_FAULTS`), read at the first.
    static PURGE_FAULTS_LEFT: Cell<Option<u32>> = const { Cell::new(None) };
}

/// Whether this purge step fails, by `TEST_PURGE_FAULTS` (tests only).
fn injected_purge_fault(faults: u32) -> bool {
    PURGE_FAULTS_LEFT.with(|left| {
        let n = left.get().unwrap_or(faults);
        left.set(Some(n.saturating_sub(1)));
        n > 0
    })
}

/// Deletes objects under the connection's prefix, at most `budget` of
/// them; true once none is left. A large archive is purged over several
/// steps (the object's alarm, then the cron), never in one unbounded call.
/// `faults`: `Config::test_purge_faults`.
pub async fn purge(bucket: &Bucket, connection_id: &str, budget: u32, faults: u32) -> Result<bool> {
    let prefix = archive::connection_prefix(connection_id);
    let mut left = budget.max(1);
    loop {
        let listed = bucket
            .list()
            .prefix(prefix.clone())
            .limit(left.min(1000))
            .execute()
            .await?;
        let keys: Vec<String> = listed.objects().iter().map(|o| o.key()).collect();
        if keys.is_empty() {
            return Ok(true);
        }
        delete(bucket, &keys).await?;
        if faults > 0 && injected_purge_fault(faults) {
            return Err(worker::Error::RustError(
                "TEST_PURGE_FAULTS: the archive failed in the middle of the purge".into(),
            ));
        }
        left = left.saturating_sub(keys.len() as u32);
        if !listed.truncated() {
            return Ok(true);
        }
        if left == 0 {
            return Ok(false);
        }
    }
}
