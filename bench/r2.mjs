// What a put costs the local R2 that workerd runs for the worker: under
// wrangler dev the bucket is JavaScript on workerd's own thread, so its CPU
// is taken from the worker's. A deployed R2 is a remote service.
import { Miniflare } from "miniflare";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { workerdCpu } from "./forwarding.mjs";

const SCRIPT = `export default { async fetch(req, env) {
  const u = new URL(req.url);
  const size = Number(u.searchParams.get("size")), n = Number(u.searchParams.get("n"));
  // Incompressible, like the gzip objects the archive writes.
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(bytes.subarray(i, Math.min(size, i + 65536)));
  for (let i = 0; i < n; i++) await env.ARCHIVE.put("page/" + i, bytes);
  return new Response("ok");
} }`;

/** Wall and workerd CPU ms per MB put, over `n` objects of `size` bytes. */
export async function localR2PutCost({ size = 1_000_000, n = 40 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), "snc-r2-bench-"));
  const mf = new Miniflare({ modules: true, script: SCRIPT, r2Buckets: ["ARCHIVE"], r2Persist: dir });
  try {
    const url = await mf.ready;
    await (await fetch(`${url}?size=${size}&n=2`)).text(); // warm
    const cpu0 = workerdCpu();
    const t0 = performance.now();
    const r = await fetch(`${url}?size=${size}&n=${n}`);
    if (!r.ok) throw new Error(`local R2 bench answered ${r.status}`);
    await r.text();
    const wall = performance.now() - t0;
    const cpu = (workerdCpu() - cpu0) * 1000;
    const mb = (size * n) / 1e6;
    return { objects: n, object_bytes: size, wall_ms_per_mb: wall / mb, cpu_ms_per_mb: cpu / mb };
  } finally {
    await mf.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}
