// The demo portal: a second origin that embeds <servicenow-connect> the way
// a real portal should. At start it creates a `connect` API key with the
// admin token and keeps it here, server-side; the page's element fetches a
// short-lived connect ticket from this server's /ticket, which only a
// visitor holding this portal's own session cookie may call. The browser
// never sees the admin token or the key.
//
//   CONNECTOR_URL=http://127.0.0.1:8787 ADMIN_TOKEN=… node demo/portal.mjs [port]
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";

const PAGE = readFileSync(new URL("./portal.html", import.meta.url), "utf8");
const escape = (s) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export async function startPortal({ connector, adminToken, port = 0, host = "127.0.0.1" }) {
  connector = connector.replace(/\/$/, "");
  const made = await fetch(`${connector}/api/v1/keys`, {
    method: "POST",
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ name: `demo portal ${new Date().toISOString()}`, scopes: ["connect"] }),
  });
  if (made.status !== 201) throw new Error(`the connector refused to create the portal's key: ${made.status} ${await made.text()}`);
  const { key, id: keyId } = await made.json();
  const sessions = new Set();
  let origin = null;

  const server = createServer(async (req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (req.method === "GET" && (path === "/" || path === "/portal.html")) {
      // A real portal signs its visitor in; the demo hands out a session.
      const session = randomBytes(16).toString("hex");
      sessions.add(session);
      res.writeHead(200, {
        "content-type": "text/html; charset=utf-8",
        "set-cookie": `portal_session=${session}; HttpOnly; SameSite=Strict; Path=/`,
      });
      return res.end(PAGE.replaceAll("__CONNECTOR__", escape(connector)));
    }
    if (req.method === "POST" && path === "/ticket") {
      const session = /(?:^|;\s*)portal_session=([0-9a-f]{32})/.exec(req.headers.cookie ?? "")?.[1];
      if (!session || !sessions.has(session)) {
        res.writeHead(401, { "content-type": "application/json" });
        return res.end(JSON.stringify({ error: "sign in to the portal first" }));
      }
      try {
        const r = await fetch(`${connector}/api/v1/tickets`, {
          method: "POST",
          headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
          body: JSON.stringify({ origin, ttl_seconds: 600 }),
        });
        const body = await r.json();
        res.writeHead(r.status === 201 ? 200 : 502, { "content-type": "application/json", "cache-control": "no-store" });
        return res.end(JSON.stringify(r.status === 201 ? { ticket: body.ticket, expires_at: body.expires_at } : { error: body.code }));
      } catch {
        res.writeHead(502, { "content-type": "application/json" });
        return res.end(JSON.stringify({ error: "connector unreachable" }));
      }
    }
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found");
  });
  await new Promise((resolve) => server.listen(port, host, resolve));
  origin = `http://${host}:${server.address().port}`;
  return {
    url: `${origin}/`,
    origin,
    keyId,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const portal = await startPortal({
    connector: process.env.CONNECTOR_URL ?? "http://127.0.0.1:8787",
    adminToken: process.env.ADMIN_TOKEN ?? "",
    port: Number(process.argv[2] ?? 8789),
  });
  console.log(`portal: ${portal.url}`);
}
