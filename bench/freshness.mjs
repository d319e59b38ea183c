// Freshness: from an attack landing on the instance to its alert at the
// team's webhook, with pulls every PULL_INTERVAL_SECS (60 here) and nothing
// asked for by hand. A burst of failed sign-ins is planted at a random
// moment of the pull cycle, ten times; p50 and p95 of the seconds until the
// webhook receives the alert naming its actor. Part of `make bench`;
// `node bench/freshness.mjs [plants]` runs it alone.
import { createServer } from "node:http";
import { fileURLToPath } from "node:url";
import { startSim, startWorker } from "../tests/support/harness.mjs";
import { client } from "../tests/support/pulls.mjs";

const INTERVAL_SECS = 60;

export async function freshnessFigures(plants = 10) {
  const sim = await startSim(["--days", "1", "--events-per-day", "500", "--seed", "23"]);
  // Each alert's arrival, by actor.
  const arrived = new Map();
  const receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      try {
        const sent = JSON.parse(body);
        if (sent.type === "alerts") {
          for (const a of sent.data) if (a.actor && !arrived.has(a.actor)) arrived.set(a.actor, performance.now());
        }
      } catch {}
      res.writeHead(204);
      res.end();
    });
  });
  await new Promise((ok) => receiver.listen(0, "127.0.0.1", ok));
  const worker = await startWorker({ vars: { PULL_INTERVAL_SECS: String(INTERVAL_SECS) } });
  try {
    const c = client(worker);
    const sink = await c.api("POST", "/api/v1/sinks", { name: "freshness", kind: "webhook", url: `http://127.0.0.1:${receiver.address().port}/in`, streams: ["alerts"] });
    if (sink.status !== 201) throw new Error(`sink: ${sink.status} ${sink.text}`);
    const conn = await c.connect(sim, "freshness");
    await c.waitCaughtUp(conn.id, { timeoutMs: 600_000 });
    const seconds = [];
    for (let i = 0; i < plants; i++) {
      // A random moment of the pull cycle.
      await new Promise((ok) => setTimeout(ok, Math.random() * INTERVAL_SECS * 1000));
      const planted = await (await fetch(`${sim.instance_url}/__sim/scenario`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ name: "failed_login_burst" }),
      })).json();
      const t0 = performance.now();
      while (!arrived.has(planted.actor) && performance.now() - t0 < 5 * INTERVAL_SECS * 1000) {
        await new Promise((ok) => setTimeout(ok, 100));
      }
      const at = arrived.get(planted.actor);
      seconds.push(at === undefined ? Infinity : (at - t0) / 1000);
      console.error(`freshness: plant ${i + 1}: ${at === undefined ? "no alert within 5 intervals" : `${((at - t0) / 1000).toFixed(1)} s`}`);
    }
    const sorted = [...seconds].sort((a, b) => a - b);
    const pick = (q) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
    return { interval_secs: INTERVAL_SECS, plants, seconds, p50_s: pick(0.5), p95_s: pick(0.95) };
  } finally {
    await worker.stop();
    await sim.stop();
    receiver.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const f = await freshnessFigures(Number(process.argv[2] || 10));
  console.log(`event to alert p50: ${f.p50_s.toFixed(0)} s`);
  console.log(`event to alert p95: ${f.p95_s.toFixed(0)} s`);
}
