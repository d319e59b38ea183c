// A fleet: 200 connections (one simulated instance, 200 accounts: a
// distinct instance and user each, as the connector counts them) kept
// caught up at PULL_INTERVAL_SECS=60 for 10 minutes in one local workerd.
// Each connection's run history says when each pull started and when the
// one before it ended; a pull is late by how much later than that end plus
// the interval it started (whole seconds, as the history keeps them). With
// 200 events a day it measures the alarms' schedule under 200 objects, not
// ingest load. Part of `make bench` (BENCH_FLEET=0 skips it: it watches
// for 10 minutes);
// `node bench/fleet.mjs [connections] [minutes]` runs it alone.
import { fileURLToPath } from "node:url";
import { startSim, startWorker } from "../tests/support/harness.mjs";
import { client, waitFor } from "../tests/support/pulls.mjs";

const INTERVAL_SECS = 60;

export async function fleetFigures(connections = 200, minutes = 10) {
  const sim = await startSim(["--days", "1", "--events-per-day", "200", "--seed", "29", "--fleet-accounts", String(connections)]);
  const worker = await startWorker({ vars: { PULL_INTERVAL_SECS: String(INTERVAL_SECS) } });
  try {
    const c = client(worker);
    const ids = [];
    const t0 = performance.now();
    // Ten connects at a time.
    for (let i = 1; i <= connections; i += 10) {
      const batch = [];
      for (let k = i; k < Math.min(i + 10, connections + 1); k++) {
        batch.push(c.api("POST", "/api/v1/connections", {
          name: `fleet-${k}`, instance_url: sim.instance_url, method: "oauth",
          username: `${sim.username}-${k}`, password: sim.password,
          client_id: sim.client_id, client_secret: sim.client_secret,
        }, 300_000));
      }
      for (const r of await Promise.all(batch)) {
        if (r.status !== 201) throw new Error(`connect: ${r.status} ${r.text}`);
        ids.push(r.json.id);
      }
    }
    const connectSecs = (performance.now() - t0) / 1000;
    await waitFor("every backfill done", async () => {
      const list = (await c.api("GET", "/api/v1/connections")).json?.connections ?? [];
      return list.filter((k) => k.backfill?.done).length >= connections ? list : null;
    }, 900_000);
    const watchFrom = Date.now();
    await new Promise((ok) => setTimeout(ok, minutes * 60_000));
    const watchTo = Date.now();
    // Late by: a pull's start less (the previous pull's end + the interval).
    const lateness = [];
    let errors = 0;
    for (const id of ids) {
      const runs = (await c.api("GET", `/api/v1/connections/${id}/runs?limit=100`)).json?.runs ?? [];
      const seen = runs
        .map((r) => ({ start: Date.parse(r.started_at), end: Date.parse(r.finished_at), outcome: r.outcome }))
        .filter((r) => r.start >= watchFrom && r.start <= watchTo)
        .sort((a, b) => a.start - b.start);
      errors += seen.filter((r) => r.outcome === "failed").length;
      // Only a caught-up run schedules the next one an interval on.
      for (let i = 1; i < seen.length; i++) {
        if (seen[i - 1].outcome === "done") lateness.push((seen[i].start - seen[i - 1].end) / 1000 - INTERVAL_SECS);
      }
    }
    const sorted = [...lateness].sort((a, b) => a - b);
    const pick = (q) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
    return {
      connections, minutes, interval_secs: INTERVAL_SECS, connect_seconds: connectSecs,
      pulls: lateness.length, late_over_5s: lateness.filter((l) => l > 5).length, failed_runs: errors,
      lateness_p50_s: pick(0.5), lateness_p95_s: pick(0.95), lateness_max_s: sorted[sorted.length - 1] ?? NaN,
    };
  } finally {
    await worker.stop();
    await sim.stop();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const f = await fleetFigures(Number(process.argv[2] || 200), Number(process.argv[3] || 10));
  console.log(JSON.stringify(f, null, 2));
  console.log(`${f.connections} caught-up connections at a ${f.interval_secs} s interval for ${f.minutes} minutes: pulls late by more than 5 s: ${f.late_over_5s} of ${f.pulls}`);
}
