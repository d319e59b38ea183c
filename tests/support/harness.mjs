// Starts real parts for end-to-end tests: the simulator binary and the worker
// in workerd (wrangler's dev server, see dev-worker.mjs) with local D1 in a fresh directory. No mocks.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, readdirSync, readFileSync, statSync, cpSync, renameSync, existsSync, mkdirSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { randomBytes, createHash } from "node:crypto";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const WRANGLER = join(ROOT, "node_modules", ".bin", "wrangler");
const DEV_WORKER = join(ROOT, "tests", "support", "dev-worker.mjs");
const SIM = process.env.SNC_SIM_BIN || join(ROOT, "target", "release", "snc-sim");

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Starts the simulator; resolves with its banner plus `stop()`. */
export async function startSim(args = []) {
  const child = spawn(SIM, ["--listen", "127.0.0.1:0", ...args], { stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout });
  const first = await new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`snc-sim exited with ${code} before its banner`)));
    lines.once("line", resolve);
  });
  const banner = JSON.parse(first);
  return {
    ...banner,
    async control(path, body) {
      const r = await fetch(`${banner.instance_url}/__sim/${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body ?? {}),
      });
      return r.json();
    },
    stop: () => stopChild(child),
  };
}

function stopChild(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    try { process.kill(-child.pid, "SIGTERM"); } catch { child.kill("SIGTERM"); }
    setTimeout(() => { try { process.kill(-child.pid, "SIGKILL"); } catch {} }, 3000).unref();
  });
}

const ENV = { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", NO_COLOR: "1" };

/**
 * Starts the built worker in wrangler's dev server with local D1 migrated in a
 * fresh persist directory. Resolves with `{ url, adminToken, logs(), stop() }`.
 */
export async function startWorker({ vars = {}, persist = null, adminToken = null, encryptionKey = null, keepPersist = false } = {}) {
  // A persist directory handed in was made by an earlier startWorker, with
  // every migration applied: it is started again as it is.
  if (!persist) {
    persist = mkdtempSync(join(tmpdir(), "snc-d1-"));
    cpSync(migratedTemplate(), persist, { recursive: true });
  }
  const port = await freePort();
  adminToken = adminToken ?? randomBytes(24).toString("base64url");
  encryptionKey = encryptionKey ?? randomBytes(32).toString("base64");
  const allVars = {
    ADMIN_TOKEN: adminToken,
    ENCRYPTION_KEY: encryptionKey,
    ALLOW_LOOPBACK_INSTANCES: "true",
    // Tests ask for the pulls they count; a test that wants the schedule's
    // own pulls sets its interval (the deployment's default is 60 s).
    PULL_INTERVAL_SECS: "300",
    ...vars,
  };
  const args = [DEV_WORKER, String(port), persist];
  for (const [k, v] of Object.entries(allVars)) args.push(`${k}=${v}`);
  const child = spawn(process.execPath, args, { cwd: ROOT, env: ENV, stdio: ["ignore", "pipe", "pipe"], detached: true });
  // The log is kept for scans, up to 64 MB: a local runtime in trouble can
  // print far more (past Node's longest string), and the tail tells why.
  let output = "";
  const keep = (d) => {
    output += d;
    if (output.length > 64_000_000) output = output.slice(0, 16_000_000) + "\n[… log cut …]\n" + output.slice(-16_000_000);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited early:\n${output}`);
    try {
      const r = await fetch(`${url}/api/v1/health`);
      if (r.ok) break;
    } catch {}
    if (Date.now() > deadline) {
      await stopChild(child);
      throw new Error(`wrangler dev not ready after 60 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    adminToken,
    encryptionKey,
    persist,
    vars,
    logs: () => output,
    /** Triggers the cron handler, as Cloudflare would every 5 minutes. */
    async cron() {
      const r = await fetch(`${url}/__scheduled?cron=*/5+*+*+*+*`);
      return r.status;
    },
    /** SIGKILL, as a crashed machine: no cleanup, the D1 files stay. */
    async kill() {
      const gone = new Promise((resolve) => child.once("exit", resolve));
      try { process.kill(-child.pid, "SIGKILL"); } catch {}
      await gone;
    },
    async stop() {
      await stopChild(child);
      if (!keepPersist) rmSync(persist, { recursive: true, force: true });
    },
  };
}

/**
 * A local D1 with every migration applied, made once per set of migrations
 * and copied for each worker: `wrangler d1 migrations apply` takes about
 * 10 s on this machine, a copy a few milliseconds. Made in a scratch
 * directory and renamed into place, so test files started at once never
 * see half a template.
 */
function migratedTemplate() {
  const dir = join(ROOT, "migrations");
  const hash = createHash("sha256");
  for (const f of readdirSync(dir).filter((f) => f.endsWith(".sql")).sort()) {
    hash.update(f).update("\0").update(readFileSync(join(dir, f))).update("\0");
  }
  // The database's id (its file's name) and wrangler's version shape it too.
  hash.update(readFileSync(join(ROOT, "wrangler.toml"))).update(readFileSync(join(ROOT, "package-lock.json")));
  const base = join(ROOT, "target", "test-d1-templates");
  const template = join(base, hash.digest("hex").slice(0, 16));
  if (existsSync(template)) return template;
  mkdirSync(base, { recursive: true });
  const scratch = mkdtempSync(join(base, "making-"));
  try {
    execFileSync(WRANGLER, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", scratch], {
      cwd: ROOT, env: ENV, stdio: "pipe",
    });
  } catch (e) {
    rmSync(scratch, { recursive: true, force: true });
    throw e;
  }
  try {
    renameSync(scratch, template);
  } catch (e) {
    // Another test file made it first.
    rmSync(scratch, { recursive: true, force: true });
    if (!existsSync(template)) throw e;
  }
  return template;
}

/**
 * Every byte of a worker's local state (D1, Durable Objects, R2) as text,
 * gzip objects decompressed, for scans: what is stored where, and what is
 * not stored anywhere.
 */
/** Every SQLite file (and write-ahead log) under `dir`. */
export function sqliteFiles(dir) {
  const out = [];
  const walk = (d) => {
    if (!existsSync(d)) return;
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.sqlite(-wal)?$/.test(p)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** The Durable Objects' SQLite files (and their write-ahead logs) under a persist directory. */
export function objectFiles(persist) {
  return sqliteFiles(join(persist, "v3", "do"));
}

export function stateText(dir) {
  const out = [];
  const walk = (d) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) { walk(p); continue; }
      if (p.endsWith(".lock")) continue;
      const bytes = readFileSync(p);
      out.push(bytes.toString("latin1"));
      if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
        try { out.push(gunzipSync(bytes).toString("utf8")); } catch {}
      }
    }
  };
  walk(dir);
  return out.join("\n");
}
