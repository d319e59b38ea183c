//! The posture check as the object runs it, at the start of a pull slice:
//! one Batch API call (five Table API calls without it) with the slice's
//! live tokens, judged by core, kept in the object's history,
//! its score and hardening warnings copied to the connection's row.

use snc_core::connect::input::AuthMethod;
use snc_core::servicenow::batch::ReadRoute;
use snc_core::servicenow::instance_url::InstanceUrl;
use snc_core::servicenow::table::ApiAuth;
use snc_core::watch::posture::{self, PostureReport};
use worker::{console_log, Result};

use super::plane::Plane;
use crate::d1::connections::Fence;
use crate::{now, transport};

/// Keeps a report: in the object's history, and its score and warnings on
/// the connection's row (unless an admin's change superseded the caller).
pub async fn keep(plane: &Plane, fence: &Fence, report: &PostureReport) -> Result<()> {
    let at = snc_core::clock::parse_rfc3339(&report.checked_at).unwrap_or_else(now);
    plane.store_posture(at, report.score, &serde_json::to_string(report)?)?;
    fence.posture(report.score, &report.warnings).await?;
    Ok(())
}

/// Reads and judges the instance's settings. A failed call is logged and
/// tried again by the next slice (the check stays due).
pub async fn check(
    plane: &Plane,
    fence: &Fence,
    method: AuthMethod,
    instance: &InstanceUrl,
    auth: &ApiAuth,
    route: ReadRoute,
    deadline: std::time::Duration,
) -> Result<Option<PostureReport>> {
    let mut reads = posture::reads(route);
    // Six calls at most: a refused batch, then the five reads.
    if let Err(why) = transport::send_reads(&mut reads, instance, auth, deadline, 6).await {
        console_log!("posture: the instance did not answer ({why})");
        return Ok(None);
    }
    let readings = match posture::parse(reads.answers(), now()) {
        Ok(r) => r,
        Err(p) => {
            console_log!("posture: the check failed: {}", p.code);
            return Ok(None);
        }
    };
    let report = posture::evaluate(&readings, method, now());
    plane.remember_properties(&readings.property_ids)?;
    keep(plane, fence, &report).await?;
    console_log!("posture: score {}", report.score);
    Ok(Some(report))
}
