// Loads the browser module and hands it the page's elements; all logic is in Rust.
import init, { showHealth } from "/pkg/snc_web.js";

await init();
await showHealth(location.origin, document.getElementById("version"));
