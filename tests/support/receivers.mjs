// Receivers the end-to-end tests point sinks at: real HTTP servers on
// loopback, answering as the real products do.
import { createServer } from "node:http";

/**
 * An Elastic `_bulk` endpoint whose mapping refuses the `poisonAt`-th
 * distinct document (a 400 `mapper_parsing_exception` for that item alone)
 * until `es.mended` is set; a document it already holds is a 409.
 * Resolves with `{ es, url, close() }`; `es` has `got` (ids taken),
 * `poison` (the refused id, once seen) and `mended`.
 */
export async function startElastic({ poisonAt }) {
  const es = { got: new Set(), poison: null, mended: false, seen: 0 };
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      const lines = body.split("\n").filter(Boolean);
      const items = [];
      for (let i = 0; i < lines.length; i += 2) {
        const id = JSON.parse(lines[i]).create._id;
        if (!es.poison && !es.got.has(id) && ++es.seen === poisonAt) es.poison = id;
        if (id === es.poison && !es.mended) {
          items.push({ create: { _id: id, status: 400, error: { type: "mapper_parsing_exception", reason: "failed to parse field [source.ip] of type [ip]" } } });
          continue;
        }
        const dup = es.got.has(id);
        es.got.add(id);
        items.push({ create: { _id: id, status: dup ? 409 : 201 } });
      }
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ errors: items.some((x) => x.create.status >= 300), items }));
    });
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    es,
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((ok) => { server.closeAllConnections?.(); server.close(ok); }),
  };
}
