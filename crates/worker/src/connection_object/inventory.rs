//! The inventory sync as the object runs it: core's `InventorySync` decides
//! what to read, this moves the bytes and upserts each page into the object.
//! A first sync of a large instance spreads over several slices (its cursors
//! persist page by page).

use snc_core::pull::run::InventoryStart;
use snc_core::servicenow::batch::ReadRoute;
use snc_core::servicenow::instance_url::InstanceUrl;
use snc_core::watch::inventory::{InventorySync, SyncEnd};
use worker::{console_log, Result};

use super::plane::Plane;
use crate::{now, transport};

/// Calls one slice spends on the inventory at most: Batch API calls (each
/// the next page of every table behind), or Table API calls where the
/// instance has no Batch API.
const CALLS_PER_SLICE: u32 = 8;

const PAGE_KEY: &str = "inventory_page";

/// The sync as the stored cursors set it: what a run's first reads are
/// (`InventorySync::riding_items`), and what `sync` goes on from.
pub fn from_storage(plane: &Plane) -> Result<InventorySync> {
    // The page size a cancelled page taught, kept between syncs.
    let page = plane
        .meta(PAGE_KEY)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(snc_core::watch::inventory::PAGE);
    Ok(InventorySync::new(&plane.inventory_cursors()?).with_page(page))
}

/// Syncs, within the slice's budget, starting from the answers the pull's
/// Batch API call brought for `from_storage`'s first reads; says whether
/// every table is now read up to now.
pub async fn sync(
    plane: &Plane,
    instance: &InstanceUrl,
    start: InventoryStart,
    route: ReadRoute,
    deadline: std::time::Duration,
    stopping: &dyn Fn() -> bool,
) -> Result<SyncEnd> {
    let mut sync = from_storage(plane)?;
    let mut kept = sync.page();
    let auth = &start.auth;
    let mut answered = match start.answered.first() {
        Ok(answers) => answers,
        Err(end) => {
            console_log!("inventory: the instance did not answer the pull's call");
            return Ok(end);
        }
    };
    let mut route = route;
    let mut calls = 0;
    while calls < CALLS_PER_SLICE {
        // A delete stops the sync between two calls: none after it.
        if stopping() {
            return Ok(SyncEnd::Behind);
        }
        let answers = match answered.take() {
            Some(answers) => answers,
            None => {
                let Some(mut reads) = sync.reads(route) else {
                    break;
                };
                match transport::send_reads(
                    &mut reads,
                    instance,
                    auth,
                    deadline,
                    CALLS_PER_SLICE - calls,
                )
                .await
                {
                    Ok(n) => calls += n,
                    Err(why) => {
                        console_log!("inventory: the instance did not answer ({why})");
                        return Ok(SyncEnd::Failed);
                    }
                }
                route = reads.route();
                reads.answers()
            }
        };
        let read = sync.handle(answers, now());
        if sync.page() != kept {
            kept = sync.page();
            plane.set_meta(PAGE_KEY, &kept.to_string())?;
        }
        match read {
            Ok(pages) => {
                for page in &pages {
                    plane.store_inventory_page(page)?;
                }
            }
            Err(p) => {
                console_log!("inventory: the read failed: {}", p.code);
                return Ok(SyncEnd::from_problem(&p));
            }
        }
    }
    Ok(if sync.done() {
        SyncEnd::Current
    } else {
        SyncEnd::Behind
    })
}
