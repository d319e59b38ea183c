// Runs the built worker in workerd as `wrangler dev --local` does, but
// through wrangler's own API with the DevTools inspector off. Under
// `wrangler dev` the inspector proxy turns every chunk of every response
// body the worker reads into a message for wrangler's Node process, each on
// a new local TCP connection: thousands a second during a backfill, a core
// of this machine's two spent on debugging nobody attached.
//
// node dev-worker.mjs <port> <persist dir> [NAME=value ...]
import { unstable_startWorker } from "wrangler";

const [port, persist, ...pairs] = process.argv.slice(2);
const bindings = {};
for (const pair of pairs) {
  const at = pair.indexOf("=");
  bindings[pair.slice(0, at)] = { type: "plain_text", value: pair.slice(at + 1), hidden: true };
}
const worker = await unstable_startWorker({
  config: "wrangler.toml",
  bindings,
  dev: {
    remote: false,
    server: { hostname: "127.0.0.1", port: Number(port) },
    inspector: false,
    persist,
    testScheduled: true,
    liveReload: false,
    watch: false,
  },
});
await worker.ready;
console.log(`dev-worker ready on ${port}`);
const stop = async () => {
  await worker.dispose().catch(() => {});
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
