// Figures of issue 28 (trustworthy under abuse and faults), printed by `make
// bench`; `node bench/abuse.mjs` runs them alone:
// - ServiceNow calls an hour for a caught-up connection whose sink fails
//   (503 + Retry-After: 1), against one whose sink is healthy (the goal: the
//   same), measured over a few minutes at a 30 s pull interval;
// - the audit rows and bytes a burst of 500 wrong credentials with 16 KB
//   paths writes;
// - workerd's peak memory while a connection stores 10,000-record pages.
import { createServer } from "node:http";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startSim, startWorker, ROOT } from "../tests/support/harness.mjs";
import { client, waitFor } from "../tests/support/pulls.mjs";

const WRANGLER = join(ROOT, "node_modules", ".bin", "wrangler");
const ENV = { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", NO_COLOR: "1" };
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
const requests = async (sim) => (await (await fetch(`${sim.instance_url}/__sim/stats`)).json()).requests;

/** Resident bytes of every workerd process. */
function workerdRss() {
  let bytes = 0;
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("workerd")) continue;
      const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+) kB/);
      if (m) bytes += Number(m[1]) * 1024;
    } catch {}
  }
  return bytes;
}

/** A webhook receiver; `failing` answers 503 asking for a retry in a second. */
async function receiver(failing) {
  const hook = { calls: 0 };
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      hook.calls++;
      if (failing) {
        res.writeHead(503, { "retry-after": "1" });
        res.end("busy");
      } else {
        res.writeHead(204);
        res.end();
      }
    });
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  hook.url = `http://127.0.0.1:${server.address().port}/in`;
  hook.close = () => new Promise((ok) => { server.closeAllConnections?.(); server.close(ok); });
  return hook;
}

async function callsPerHourWithFailingSink(seconds) {
  const [healthySim, failingSim] = await Promise.all([
    startSim(["--days", "1", "--events-per-day", "200", "--seed", "2801"]),
    startSim(["--days", "1", "--events-per-day", "200", "--seed", "2801"]),
  ]);
  const [healthy, failing] = await Promise.all([receiver(false), receiver(true)]);
  const worker = await startWorker({ vars: { PULL_INTERVAL_SECS: "30" } });
  try {
    const c = client(worker);
    const a = await c.connect(healthySim, "healthy-sink");
    const b = await c.connect(failingSim, "failing-sink");
    for (const [conn, hook] of [[a, healthy], [b, failing]]) {
      const r = await c.api("POST", "/api/v1/sinks", { name: `hook-${conn.name}`, kind: "webhook", url: hook.url, streams: ["events"], connection_ids: [conn.id], format: "contract" });
      if (r.status !== 201) throw new Error(r.text);
    }
    await Promise.all([a, b].map((x) => c.waitCaughtUp(x.id)));
    // New events for both, so the failing sink has something to fail on.
    for (const sim of [healthySim, failingSim]) await sim.control("insert", { table: "sysevent", count: 20 });
    const before = [await requests(healthySim), await requests(failingSim)];
    const sinkBefore = failing.calls;
    await sleep(seconds * 1000);
    const after = [await requests(healthySim), await requests(failingSim)];
    const perHour = (i) => ((after[i] - before[i]) * 3600) / seconds;
    return {
      seconds,
      interval_secs: 30,
      healthy_calls_per_hour: perHour(0),
      failing_calls_per_hour: perHour(1),
      failing_sink_calls_per_hour: ((failing.calls - sinkBefore) * 3600) / seconds,
    };
  } finally {
    await worker.stop();
    await Promise.all([healthySim.stop(), failingSim.stop(), healthy.close(), failing.close()]);
  }
}

async function auditRowsOfABurst() {
  const worker = await startWorker({ vars: { PULLS_PAUSED: "true" }, keepPersist: true });
  try {
    const path = `/api/v1/connections/${"x".repeat(16_384)}`;
    await Promise.all(Array.from({ length: 500 }, (_, i) =>
      fetch(worker.url + path, { headers: { authorization: `Bearer wrong-guess-${i}` } }).then((r) => r.arrayBuffer()).catch(() => null)));
    await worker.stop();
    const out = execFileSync(WRANGLER, ["d1", "execute", "DB", "--local", "--persist-to", worker.persist, "--json", "--command",
      "SELECT count(*) AS n, coalesce(sum(length(target) + length(coalesce(ip, '')) + length(action) + length(outcome)), 0) AS bytes FROM audit_log"], { cwd: ROOT, env: ENV, stdio: "pipe" }).toString();
    const [row] = JSON.parse(out)[0].results;
    return { requests: 500, audit_rows: row.n, audit_bytes: row.bytes };
  } finally {
    await worker.stop().catch(() => {});
    rmSync(worker.persist, { recursive: true, force: true });
  }
}

async function peakMemoryStoringLargestPages() {
  const sim = await startSim(["--days", "2", "--events-per-day", "60000", "--seed", "2803"]);
  const worker = await startWorker({ vars: { PULL_PAGE_SIZE: "10000" } });
  try {
    const c = client(worker);
    await sleep(1000);
    const idle = workerdRss();
    let peak = idle;
    const conn = await c.connect(sim, "largest-pages");
    let done = false;
    const watch = (async () => {
      while (!done) {
        peak = Math.max(peak, workerdRss());
        await sleep(50);
      }
    })();
    const end = await c.waitCaughtUp(conn.id, { timeoutMs: 600_000 });
    done = true;
    await watch;
    return { page_records: 10_000, events: end.event_count, idle_rss_bytes: idle, peak_rss_bytes: peak };
  } finally {
    await worker.stop();
    await sim.stop();
  }
}

export async function abuseFigures({ seconds = 180 } = {}) {
  const sink = await callsPerHourWithFailingSink(seconds);
  const burst = await auditRowsOfABurst();
  const memory = await peakMemoryStoringLargestPages();
  return { sink, burst, memory };
}

export function abuseRows(a) {
  const mb = (b) => (b / 1e6).toFixed(0);
  return [
    ["ServiceNow calls an hour, caught up, healthy sink", a.sink.healthy_calls_per_hour.toFixed(0), `${a.sink.interval_secs} s interval`],
    ["  the same with its sink failing (503, Retry-After: 1)", a.sink.failing_calls_per_hour.toFixed(0), "= healthy"],
    ["    calls to the failing sink an hour", a.sink.failing_sink_calls_per_hour.toFixed(0), ""],
    ["audit rows written by 500 wrong credentials, 16 KB paths", String(a.burst.audit_rows), "<= 20"],
    ["  their bytes (target, address, action, outcome)", String(a.burst.audit_bytes), ""],
    ["workerd peak memory storing 10,000-record pages, MB", mb(a.memory.peak_rss_bytes), ""],
    ["  idle before the connect, MB", mb(a.memory.idle_rss_bytes), ""],
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const a = await abuseFigures({ seconds: Number(process.argv[2] || 180) });
  console.log(JSON.stringify(a, null, 2));
  console.log("\n" + abuseRows(a).map(([k, v, t]) => `${k.padEnd(56)} ${v.padStart(10)}  ${t}`).join("\n"));
}
