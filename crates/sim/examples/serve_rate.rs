//! Measures the simulator's raw serve rate: pages of 10,000 records fetched by
//! a plain HTTP client and thrown away. Prints records/s.
//!
//! cargo run --release -p snc-sim --example serve_rate -- [total_records]

use std::time::Instant;

#[tokio::main]
async fn main() {
    let total: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let days = 7;
    let per_day = total.div_ceil(days);
    let t0 = Instant::now();
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(l) => l,
        Err(e) => return eprintln!("bind: {e}"),
    };
    let config = snc_sim::SimConfig {
        days,
        events_per_day: per_day,
        ..Default::default()
    };
    let sim = match snc_sim::start(config.clone(), listener).await {
        Ok(s) => s,
        Err(e) => return eprintln!("start: {e}"),
    };
    println!(
        "generated {total} event records in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut records = 0usize;
    let mut bytes = 0usize;
    let mut pages = 0usize;
    for table in [
        "sysevent",
        "sys_audit",
        "sys_audit_delete",
        "syslog_transaction",
    ] {
        let mut offset = 0;
        loop {
            let url = format!(
                "{}/api/now/table/{table}?sysparm_query=ORDERBYsys_created_on%5EORDERBYsys_id&sysparm_limit=10000&sysparm_offset={offset}&sysparm_exclude_reference_link=true",
                sim.instance_url()
            );
            let resp = match http
                .get(&url)
                .basic_auth(&config.username, Some(&config.password))
                .send()
                .await
            {
                Ok(r) => r,
                Err(e) => return eprintln!("fetch: {e}"),
            };
            if resp.status() == 404 {
                break;
            }
            let body = resp.bytes().await.unwrap_or_default();
            let n = bytecount(&body);
            bytes += body.len();
            records += n;
            pages += 1;
            if n < 10_000 {
                break;
            }
            offset += 10_000;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "served {records} records in {pages} pages of up to 10,000 in {secs:.2} s: {:.0} records/s, {:.1} MB/s",
        records as f64 / secs,
        bytes as f64 / secs / 1e6
    );
    sim.stop().await;
}

/// Records in a page, counted without parsing: one `"sys_id":` per record.
fn bytecount(body: &[u8]) -> usize {
    body.windows(9).filter(|w| w == b"\"sys_id\":").count()
}
