// A fleet: 200 connections (one simulated instance, 200 accounts: a
// distinct instance and user each, as the connector counts them) kept
// caught up at PULL_INTERVAL_SECS=60 for 10 minutes in one local workerd.
// A caught-up pull that finds nothing folds into its hour's history row, so
// lateness is read from each connection's pull count and last pull time
// (whole seconds) at the window's start and end: its mean cycle less the
// interval is how late its pulls came on average (the pulls' own duration
// included). With 200 events a day it measures the alarms' schedule under
// 200 objects, not ingest load. Part of `make bench` (BENCH_FLEET=0 skips
// it: it watches for 10 minutes);
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
    // Each connection's pull count and last pull, at both ends of the window.
    // Both from one answer, so no pull falls between them.
    const reading = async () => {
      const out = new Map();
      for (const id of ids) {
        const runs = (await c.api("GET", `/api/v1/connections/${id}/runs`)).json;
        out.set(id, { pulls: runs?.pulls ?? 0, last: Date.parse(runs?.last_pull_at), failed: (runs?.runs ?? []).filter((r) => r.outcome === "failed").length });
      }
      return out;
    };
    const first = await reading();
    await new Promise((ok) => setTimeout(ok, minutes * 60_000));
    const last = await reading();
    const lateness = [];
    let errors = 0;
    let pulls = 0;
    for (const id of ids) {
      const a = first.get(id);
      const b = last.get(id);
      errors += b.failed - a.failed;
      const n = b.pulls - a.pulls;
      pulls += n;
      if (n > 0 && Number.isFinite(a.last) && Number.isFinite(b.last)) lateness.push((b.last - a.last) / 1000 / n - INTERVAL_SECS);
      else lateness.push(Infinity);
    }
    const sorted = [...lateness].sort((a, b) => a - b);
    const pick = (q) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
    return {
      connections, minutes, interval_secs: INTERVAL_SECS, connect_seconds: connectSecs, pulls,
      late_over_5s: lateness.filter((l) => l > 5).length, failed_runs: errors,
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
  console.log(`${f.connections} caught-up connections at a ${f.interval_secs} s interval for ${f.minutes} minutes (${f.pulls} pulls): connections whose pulls came more than 5 s late on average: ${f.late_over_5s}`);
}
