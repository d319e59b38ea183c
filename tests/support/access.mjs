// A stand-in for a Cloudflare Access team in tests: its certs served over
// HTTP (keys added on demand) and assertions signed with its test keys.
import { createServer } from "node:http";
import { generateKeyPairSync, sign } from "node:crypto";

export const AUD = "aud-4f1c";
export const TEAM = "snc-test.cloudflareaccess.com";

const b64url = (x) => Buffer.from(typeof x === "string" ? x : JSON.stringify(x)).toString("base64url");

export async function startAccessTeam() {
  const keys = { k1: generateKeyPairSync("rsa", { modulusLength: 2048 }) };
  const served = ["k1"];
  const server = createServer((req, res) => {
    const jwks = served.map((kid) => ({ ...keys[kid].publicKey.export({ format: "jwk" }), kid, alg: "RS256", use: "sig" }));
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ keys: jwks, public_cert: { kid: "k1", cert: "-----BEGIN CERTIFICATE-----\n…" } }));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const certsUrl = `http://127.0.0.1:${server.address().port}/cdn-cgi/access/certs`;
  return {
    /** The worker's settings for this team. */
    vars: { ACCESS_TEAM_DOMAIN: TEAM, ACCESS_AUD: AUD, ACCESS_CERTS_URL: certsUrl },
    /** A key pair; `publish` puts it in the certs. */
    newKey(kid, { publish = false } = {}) {
      keys[kid] = generateKeyPairSync("rsa", { modulusLength: 2048 });
      if (publish) served.push(kid);
      return keys[kid];
    },
    publish(kid) { served.push(kid); },
    /** An assertion as Access makes one; any part can be overridden. */
    jwt({ header = {}, claims = {}, key } = {}) {
      const now = Math.floor(Date.now() / 1000);
      const h = { alg: "RS256", kid: "k1", typ: "JWT", ...header };
      const c = { aud: [AUD], iss: `https://${TEAM}`, sub: "user-7", email: "ana@example.com", iat: now, nbf: now - 5, exp: now + 600, ...claims };
      const input = `${b64url(h)}.${b64url(c)}`;
      const signer = key ?? keys[h.kid] ?? keys.k1;
      const sig = h.alg === "none" ? "" : sign("sha256", Buffer.from(input), signer.privateKey).toString("base64url");
      return `${input}.${sig}`;
    },
    b64url,
    close: () => new Promise((r) => server.close(r)),
  };
}
