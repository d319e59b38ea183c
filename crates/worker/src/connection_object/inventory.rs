//! The inventory sync as the object runs it: core's `InventorySync` decides
//! what to read, this moves the bytes and upserts each page into the object.
//! A first sync of a large instance spreads over several slices (its cursors
//! persist page by page).

use snc_core::servicenow::batch::ReadRoute;
use snc_core::servicenow::instance_url::InstanceUrl;
use snc_core::servicenow::table::ApiAuth;
use snc_core::watch::inventory::{InventorySync, SyncEnd};
use worker::{console_log, Result};

use super::plane::Plane;
use crate::{now, transport};

/// Calls one slice spends on the inventory at most: Batch API calls (each
/// the next page of every table behind), or Table API calls where the
/// instance has no Batch API.
const CALLS_PER_SLICE: u32 = 8;

const PAGE_KEY: &str = "inventory_page";

/// Syncs, within the slice's budget; says whether every table is now read
/// up to now.
pub async fn sync(
    plane: &Plane,
    instance: &InstanceUrl,
    auth: &ApiAuth,
    route: ReadRoute,
    deadline: std::time::Duration,
    stopping: &dyn Fn() -> bool,
) -> Result<SyncEnd> {
    // The page size a cancelled page taught, kept between syncs.
    let page = plane
        .meta(PAGE_KEY)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(snc_core::watch::inventory::PAGE);
    let mut kept = page;
    let mut sync = InventorySync::new(&plane.inventory_cursors()?).with_page(page);
    let mut route = route;
    let mut calls = 0;
    while calls < CALLS_PER_SLICE {
        // A delete stops the sync between two calls: none after it.
        if stopping() {
            return Ok(SyncEnd::Behind);
        }
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
        let answered = sync.handle(reads.answers(), now());
        if sync.page() != kept {
            kept = sync.page();
            plane.set_meta(PAGE_KEY, &kept.to_string())?;
        }
        match answered {
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
