// Loads the browser module and hands the page what it needs from it. The
// connect wizard itself (steps, checks, drawing, polling) is Rust:
// crates/web/src/wizard. Every call to the connector goes through the
// module's one API client (crates/web/src/api.rs).
import init, { mountWizard as mountRustWizard, apiCall } from "./pkg/snc_web.js";

let ready = null;
/** Loads the wasm module once, relative to this script (works cross-origin). */
export function loadCore() {
  ready ??= init({ module_or_path: new URL("./pkg/snc_web_bg.wasm", import.meta.url) });
  return ready;
}

/** A DOM node with attributes and children; text is only ever set as text. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c);
  return node;
}

/**
 * One API call through the Rust client. `credential` is a string, null
 * (behind Cloudflare Access) or a function `(renew) => ticket` for a portal's
 * renewable ticket. Answers `{ok, status, json}` or `{ok: false, status,
 * problem}`; no answer at all is the problem `connector_unreachable`.
 */
export async function api(base, credential, method, path, body) {
  await loadCore();
  return apiCall(base, credential, method, path, body);
}

/**
 * Mounts the wizard in `root`. `opts`: { apiBase, token (a credential as for
 * `api`), onConnected(connection), onError(problem) }.
 */
export async function mountWizard(root, opts) {
  await loadCore();
  await mountRustWizard(root, opts);
  // For bench/page.mjs: when the wizard first accepts input.
  performance.mark("snc-wizard-ready");
}
