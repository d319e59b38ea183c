// `make profile`: a V8 CPU profile of the worker's isolate during one
// connect and full backfill (350,000 events by default), printed as the
// functions with the most time of their own, and written to
// target/bench/backfill.cpuprofile (open it in Chrome's DevTools).
//
// The worker runs in Miniflare directly, with the runtime's own inspector:
// wrangler's inspector proxy holds the runtime's one inspector session, so
// a profiler asked through it never answers. The bindings come from
// wrangler.toml through wrangler's API; the static assets are left out.
//
// Read the figures with care: time spent in the runtime's native code (an
// SQL statement, an R2 call) is sometimes charged to the wasm function that
// ran just before it, so a cheap loop can show a native call's cost. Time a
// suspect step in the worker's log line before acting on it. Local R2 and D1
// run in their own isolates, which this profile does not show.
import { Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { createRequire } from "node:module";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { startSim, freePort, ROOT } from "../tests/support/harness.mjs";
import { client } from "../tests/support/pulls.mjs";

// Node 20 has no WebSocket client of its own: miniflare's is used.
const require = createRequire(import.meta.url);
const WebSocket = createRequire(require.resolve("miniflare"))("ws");

const PER_DAY = Number(process.env.BENCH_EVENTS_PER_DAY || 50_000);
const OUT = join(ROOT, "target", "bench");
mkdirSync(OUT, { recursive: true });

const sim = await startSim(["--days", "8", "--events-per-day", String(PER_DAY), "--seed", "7"]);
const persist = mkdtempSync(join(tmpdir(), "snc-profile-"));
execFileSync(join(ROOT, "node_modules/.bin/wrangler"), ["d1", "migrations", "apply", "DB", "--local", "--persist-to", persist], { cwd: ROOT, stdio: "pipe" });
const [port, inspectorPort] = [await freePort(), await freePort()];
const adminToken = "p".repeat(32);
const { workerOptions } = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml"));
delete workerOptions.assets;
const mf = new Miniflare({
  ...workerOptions,
  modules: true,
  scriptPath: join(ROOT, "crates/worker/build/worker/shim.mjs"),
  modulesRules: [
    { type: "CompiledWasm", include: ["**/*.wasm"] },
    { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
  ],
  bindings: {
    ...workerOptions.bindings,
    ADMIN_TOKEN: adminToken,
    ENCRYPTION_KEY: Buffer.alloc(32, 7).toString("base64"),
    ALLOW_LOOPBACK_INSTANCES: "true",
    PULL_BUDGET_MS: "600000",
    PULL_MAX_CALLS: "1000",
  },
  host: "127.0.0.1",
  port,
  inspectorPort,
  d1Persist: join(persist, "v3/d1"),
  r2Persist: join(persist, "v3/r2"),
  durableObjectsPersist: join(persist, "v3/do"),
});

let ws;
try {
  const url = (await mf.ready).toString().replace(/\/$/, "");
  const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json/list`)).json();
  const target = targets.find((t) => String(t.id).startsWith("core:user"));
  if (!target) throw new Error(`no user worker among the inspector's targets: ${targets.map((t) => t.id).join(", ")}`);
  ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((ok, fail) => {
    ws.on("open", ok);
    ws.on("error", fail);
  });
  let next = 0;
  const waiting = new Map();
  ws.on("message", (m) => {
    const d = JSON.parse(m.toString());
    waiting.get(d.id)?.(d);
    waiting.delete(d.id);
  });
  const call = (method, params = {}) =>
    new Promise((ok) => {
      const id = ++next;
      waiting.set(id, ok);
      ws.send(JSON.stringify({ id, method, params }));
    });
  // The runtime reads inspector messages when the isolate runs: requests
  // until the profiler says it started.
  const started = Promise.all([call("Profiler.enable"), call("Profiler.setSamplingInterval", { interval: 1000 }), call("Profiler.start")]);
  let on = false;
  for (let i = 0; i < 50 && !on; i++) {
    await fetch(`${url}/api/v1/health`);
    on = await Promise.race([started.then(() => true), new Promise((r) => setTimeout(() => r(false), 200))]);
  }
  if (!on) throw new Error("the profiler did not start");

  const c = client({ url, adminToken });
  const t0 = performance.now();
  const conn = await c.connect(sim, "profile");
  const done = await c.waitCaughtUp(conn.id, { timeoutMs: 900_000 });
  const seconds = (performance.now() - t0) / 1000;
  const { profile } = (await call("Profiler.stop")).result;
  writeFileSync(join(OUT, "backfill.cpuprofile"), JSON.stringify(profile));

  const selfUs = new Map();
  profile.samples.forEach((node, i) => selfUs.set(node, (selfUs.get(node) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const byName = new Map();
  for (const n of profile.nodes) {
    const name = `${n.callFrame.functionName.replace(/::h[0-9a-f]{16}$/, "") || "(anonymous)"}`;
    byName.set(name, (byName.get(name) ?? 0) + (selfUs.get(n.id) ?? 0));
  }
  const total = [...byName.values()].reduce((a, b) => a + b, 0);
  console.log(`profile: ${done.event_count} events in ${seconds.toFixed(1)} s; ${(total / 1000).toFixed(0)} ms sampled in the worker's isolate`);
  for (const [name, us] of [...byName].sort((a, b) => b[1] - a[1]).slice(0, 40)) {
    console.log(`${(us / 1000).toFixed(0).padStart(7)} ms ${((100 * us) / total).toFixed(1).padStart(5)} %  ${name.slice(0, 150)}`);
  }
  console.log(`profile: written to ${join(OUT, "backfill.cpuprofile")}`);
} finally {
  ws?.close();
  await mf.dispose();
  await sim.stop();
  rmSync(persist, { recursive: true, force: true });
}
