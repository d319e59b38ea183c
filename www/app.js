// The hosted admin page: asks for the admin token once (kept in
// sessionStorage, never in a URL), then shows the wizard and the connections.
import { loadCore, mountWizard, api, el } from "./wizard.js";
import { mountAdmin } from "./admin.js";
import { showHealth } from "./pkg/snc_web.js";

const base = location.origin;
const tokenForm = document.getElementById("token-form");
const main = document.getElementById("app");
const token = () => sessionStorage.getItem("snc-admin-token") ?? "";
// The token form is plain HTML and needs no wasm: the admin can type while
// the module loads. It goes away when the tab already has a token.
if (token()) tokenForm.hidden = true;
const core = loadCore().then(() => showHealth(location.origin, document.getElementById("version")));

async function start() {
  await core;
  const settings = await api(base, token(), "GET", "/settings");
  if (!settings.ok) {
    sessionStorage.removeItem("snc-admin-token");
    tokenForm.hidden = false;
    const err = document.getElementById("token-error");
    err.textContent = settings.problem.code === "unauthorized" ? "That admin token is not right. It is the worker's ADMIN_TOKEN." : settings.problem.detail;
    err.hidden = false;
    document.getElementById("token").setAttribute("aria-invalid", "true");
    document.getElementById("token").focus();
    return;
  }
  tokenForm.hidden = true;
  const wizardSection = el("section", { "aria-labelledby": "connect-title", class: "card" }, el("h2", { id: "connect-title", class: "section-title", text: "Connect ServiceNow" }));
  const adminSection = el("section", { "aria-labelledby": "connections-title", class: "card" });
  main.replaceChildren(wizardSection, adminSection);
  const admin = mountAdmin(adminSection, { apiBase: base, token });
  mountWizard(wizardSection, { apiBase: base, token, settings: settings.json, onConnected: () => admin.refresh() });
}

tokenForm.addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("snc-admin-token", document.getElementById("token").value.trim());
  start();
});
if (token()) start();
