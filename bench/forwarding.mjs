// Forwarding's figures: a backfill stored with its webhook sink disabled,
// then the sink enabled: how fast the stored events reach a local receiver,
// and what the isolate spends on it (receiver calls, archive reads, D1
// statements, workerd CPU) per 10,000 events forwarded. Part of `make
// bench`; `node bench/forwarding.mjs [events per day]` runs it alone.
import { createServer } from "node:http";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { startSim, startWorker } from "../tests/support/harness.mjs";
import { client } from "../tests/support/pulls.mjs";

/** CPU seconds (user + system) of every workerd process. */
export function workerdCpu() {
  let ticks = 0;
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("workerd")) continue;
      const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
      ticks += Number(f[11]) + Number(f[12]);
    } catch {}
  }
  return ticks / 100;
}

export async function forwardingFigures(perDay) {
  const fsim = await startSim(["--days", "8", "--events-per-day", String(Math.round(perDay)), "--seed", "11"]);
  let got = 0;
  let calls = 0;
  const receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      calls++;
      got += JSON.parse(body).data.length;
      res.writeHead(204);
      res.end();
    });
  });
  await new Promise((ok) => receiver.listen(0, "127.0.0.1", ok));
  const worker = await startWorker({ vars: { PULL_BUDGET_MS: "600000", PULL_MAX_CALLS: "1000", PULL_PAGE_SIZE: "2000" } });
  try {
    const c = client(worker);
    const sink = (await c.api("POST", "/api/v1/sinks", { name: "bench", kind: "webhook", url: `http://127.0.0.1:${receiver.address().port}/in`, streams: ["events"] })).json;
    await c.api("PATCH", `/api/v1/sinks/${sink.id}`, { state: "disabled" });
    const conn = await c.connect(fsim, "forwarded");
    const done = await c.waitCaughtUp(conn.id, { timeoutMs: 1_800_000 });
    const logStart = worker.logs().length;
    const cpu0 = workerdCpu();
    const t0 = performance.now();
    await c.api("PATCH", `/api/v1/sinks/${sink.id}`, { state: "active" });
    await c.api("POST", `/api/v1/connections/${conn.id}/pull`);
    while (got < done.event_count && performance.now() - t0 < 900_000) await new Promise((ok) => setTimeout(ok, 100));
    const secs = (performance.now() - t0) / 1000;
    const cpu = workerdCpu() - cpu0;
    const steps = [...worker.logs().slice(logStart).matchAll(/forward: \S+ \S+: (\d+) records in (\d+) calls, (\d+) archive reads, (\d+) D1 statements/g)];
    const sum = (i) => steps.reduce((a, m) => a + Number(m[i]), 0);
    const per10k = (n) => (n * 10_000) / Math.max(got, 1);
    return {
      events: got, seconds: secs, events_per_s: got / secs, receiver_calls: calls,
      subrequests_per_10k: per10k(sum(2) + sum(3) + sum(4)), calls_per_10k: per10k(sum(2)), archive_reads_per_10k: per10k(sum(3)), d1_per_10k: per10k(sum(4)),
      workerd_cpu_ms_per_10k: per10k(cpu * 1000),
    };
  } finally {
    await worker.stop();
    await fsim.stop();
    receiver.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify(await forwardingFigures(Number(process.argv[2] ?? 12_500)), null, 2));
}
