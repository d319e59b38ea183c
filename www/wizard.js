// Mounts the connect wizard (Rust: crates/web/src/wizard) for the page's
// Connect view and for embed.js.
import init, { mountWizard as mountRustWizard } from "./pkg/snc_web.js";

/**
 * Mounts the wizard in `root`. `opts`: { apiBase, token (a string, null
 * behind Cloudflare Access, or `(renew) => ticket` for a portal's ticket),
 * onConnected(connection), onError(problem) }.
 */
export async function mountWizard(root, opts) {
  // Relative to this script, so a portal on another origin loads it too.
  await init({ module_or_path: new URL("./pkg/snc_web_bg.wasm", import.meta.url) });
  await mountRustWizard(root, opts);
  // For bench/page.mjs: when the wizard first accepts input.
  performance.mark("snc-wizard-ready");
}
