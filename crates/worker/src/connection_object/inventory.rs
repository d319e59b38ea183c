//! The inventory sync as the object runs it after a pull: core's
//! `InventorySync` decides what to read, this moves the bytes and upserts
//! each page into the object. A first sync of a large instance spreads over
//! several slices (its cursors persist page by page).

use snc_core::instance_url::InstanceUrl;
use snc_core::inventory::InventorySync;
use snc_core::table::ApiAuth;
use worker::{console_log, Result};

use super::plane::Plane;
use crate::{now, transport};

/// Batch API calls one slice spends on the inventory at most.
const CALLS_PER_SLICE: u32 = 8;

/// Syncs; returns the records upserted.
pub async fn sync(
    plane: &Plane,
    instance: &InstanceUrl,
    auth: &ApiAuth,
    deadline: std::time::Duration,
    stopping: &dyn Fn() -> bool,
) -> Result<usize> {
    let mut sync = InventorySync::new(&plane.inventory_cursors()?);
    let mut upserted = 0;
    for _ in 0..CALLS_PER_SLICE {
        // A delete stops the sync between two calls: none after it.
        if stopping() {
            break;
        }
        let Some(req) = sync.request(instance, auth) else {
            break;
        };
        let answer = match transport::send_within(&req, deadline).await {
            Ok(a) => a,
            Err(why) => {
                console_log!("inventory: the instance did not answer ({why})");
                break;
            }
        };
        match sync.handle(&answer, now()) {
            Ok(pages) => {
                for page in &pages {
                    plane.store_inventory_page(page)?;
                    upserted += page.records.len();
                }
            }
            Err(p) => {
                console_log!("inventory: the read failed: {}", p.code);
                break;
            }
        }
    }
    Ok(upserted)
}
