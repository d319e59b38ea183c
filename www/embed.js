// <servicenow-connect api-base="https://connector.example" ticket-url="/ticket">
// The connect wizard in a shadow root, themable with CSS custom properties
// (--snc-accent, --snc-error, --snc-radius, --snc-font). Fires `connected`
// (detail: the Connection) and `connect-error` (detail: the problem).
// It is authenticated by a short-lived connect ticket (snct_…) that the
// portal's backend mints: given as the `ticket` attribute or property, or
// fetched from `ticket-url` (a POST to the portal, with the portal's own
// cookies, answering {"ticket"}) at start and again when one has run out.
// Never an admin token or API key: anything in the page can read those.
import { mountWizard } from "./wizard.js";

const STYLE = `
:host { display: block; font-family: var(--snc-font, system-ui, sans-serif); color: #1b1b1b; }
.snc-wizard { border: 1px solid #c8c8c8; border-radius: var(--snc-radius, 6px); padding: 1rem; }
h2 { font-size: 1.2rem; color: var(--snc-accent, #0b5cab); }
label { display: block; font-weight: 600; margin-top: .6rem; }
input[type=text], input[type=password] { font: inherit; padding: .4rem; width: 100%; box-sizing: border-box; border: 1px solid #767676; border-radius: 4px; }
input[aria-invalid=true] { border-color: var(--snc-error, #a4001a); outline: 2px solid var(--snc-error, #a4001a); }
button { font: inherit; padding: .45rem .9rem; margin: .6rem .4rem 0 0; border-radius: 4px; border: 1px solid var(--snc-accent, #0b5cab); background: var(--snc-accent, #0b5cab); color: #fff; }
button.secondary { background: #fff; color: var(--snc-accent, #0b5cab); }
:focus-visible { outline: 3px solid #ffbf47; outline-offset: 2px; }
.snc-hint { color: #4a4a4a; font-size: .9rem; margin: .2rem 0; }
.snc-error { color: var(--snc-error, #a4001a); }
.snc-warning { color: #6b4e00; }
.snc-alert { border-left: 4px solid var(--snc-error, #a4001a); padding: .5rem 1rem; background: #fdf0f2; }
.snc-steps { display: flex; flex-wrap: wrap; gap: .5rem; padding: 0; list-style: none; font-size: .85rem; }
.snc-steps li { padding: .2rem .5rem; border-radius: 4px; background: #eee; }
.snc-steps li.current { background: var(--snc-accent, #0b5cab); color: #fff; }
fieldset { border: none; padding: 0; } .snc-option label { display: inline; }
progress { width: 100%; }
`;

class ServiceNowConnect extends HTMLElement {
  #ticket = null;
  get ticket() { return this.#ticket ?? this.getAttribute("ticket") ?? ""; }
  set ticket(v) { this.#ticket = v; }

  /** The ticket to send; `renew` asks the portal for a new one. */
  async #credential(renew) {
    const url = this.getAttribute("ticket-url");
    if (url && (renew || !this.ticket)) {
      try {
        const r = await fetch(new URL(url, location.href), { method: "POST", credentials: "include", headers: { accept: "application/json" } });
        const body = r.ok ? await r.json() : null;
        if (typeof body?.ticket === "string") this.#ticket = body.ticket;
      } catch {
        // The call that needed it reports the failure (401).
      }
    }
    return this.ticket;
  }

  async connectedCallback() {
    if (this.shadowRoot) return;
    const root = this.attachShadow({ mode: "open" });
    const style = document.createElement("style");
    style.textContent = STYLE;
    root.append(style);
    const base = (this.getAttribute("api-base") || new URL(".", import.meta.url).origin).replace(/\/$/, "");
    await mountWizard(root, {
      apiBase: base,
      token: (renew) => this.#credential(renew),
      onConnected: (c) => this.dispatchEvent(new CustomEvent("connected", { detail: c, bubbles: true, composed: true })),
      onError: (p) => this.dispatchEvent(new CustomEvent("connect-error", { detail: p, bubbles: true, composed: true })),
    });
  }
}

if (!customElements.get("servicenow-connect")) customElements.define("servicenow-connect", ServiceNowConnect);
