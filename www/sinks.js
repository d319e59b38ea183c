// The hosted page's Sinks view: where events and alerts are forwarded, each
// sink's health (state, delivered, pending, last success, last error), and
// create, test, enable/disable, replay and delete. Credentials are sent
// once and never shown again; a webhook's signing secret is shown once.
import { api, el } from "./wizard.js";

const KINDS = {
  webhook: { label: "Webhook (Standard Webhooks)", fields: [] },
  splunk_hec: { label: "Splunk HTTP Event Collector", fields: [["token", "HEC token", "password"]] },
  elastic: { label: "Elastic (_bulk into a data stream)", fields: [["api_key", "API key", "password"], ["index", "Data stream", "text"]] },
  sentinel: { label: "Microsoft Sentinel (Logs Ingestion API)", fields: [["tenant_id", "Tenant ID", "text"], ["client_id", "Client ID", "text"], ["client_secret", "Client secret", "password"], ["dcr_immutable_id", "DCR immutable ID", "text"], ["stream_name", "Stream name", "text"]] },
};

export function mountSinks(root, { apiBase, token, canChange }) {
  const call = (method, path, body) => api(apiBase, token, method, path, body);
  const note = el("p", { role: "status", "aria-live": "polite", class: "snc-live" });
  const table = el("table", { class: "events sinks" });
  const shown = el("div", { class: "sink-shown" });
  root.append(el("h2", { id: "sinks-title", class: "section-title", text: "Forwarding" }), note, table, shown);

  if (canChange) {
    const name = el("input", { id: "sink-name", type: "text", required: true });
    const kind = el("select", { id: "sink-kind" }, ...Object.entries(KINDS).map(([k, v]) => el("option", { value: k, text: v.label })));
    const url = el("input", { id: "sink-url", type: "text", required: true, inputmode: "url", "aria-describedby": "sink-url-hint" });
    const format = el("select", { id: "sink-format" }, ...[["contract", "This connector's events"], ["ocsf", "OCSF"], ["ecs", "Elastic Common Schema"]].map(([v, t]) => el("option", { value: v, text: t })));
    const streams = ["events", "alerts"].map((s) => {
      const box = el("input", { type: "checkbox", id: `sink-stream-${s}`, value: s, checked: true });
      return { s, box, wrap: el("div", { class: "snc-option" }, box, el("label", { for: box.id, text: ` ${s}` })) };
    });
    const extra = el("div");
    const error = el("p", { class: "snc-error", role: "alert", hidden: true });
    const drawFields = () => extra.replaceChildren(...KINDS[kind.value].fields.flatMap(([f, label, type]) => [
      el("label", { for: `sink-${f}`, text: label }), el("input", { id: `sink-${f}`, name: f, type, autocomplete: "off", required: true })]));
    kind.addEventListener("change", drawFields);
    drawFields();
    const form = el("form", { class: "sink-form", "aria-labelledby": "sink-form-title" },
      el("h3", { id: "sink-form-title", text: "Add a sink" }),
      el("label", { for: "sink-name", text: "Name" }), name,
      el("label", { for: "sink-kind", text: "Receiver" }), kind,
      el("label", { for: "sink-url", text: "URL" }), url,
      el("p", { id: "sink-url-hint", class: "snc-hint", text: "The receiver's https address, such as https://hec.example.com:8088/services/collector/event." }),
      el("fieldset", {}, el("legend", { text: "Send" }), ...streams.map((x) => x.wrap)),
      el("label", { for: "sink-format", text: "Format" }), format, extra,
      el("button", { type: "submit", text: "Add sink" }), error);
    root.append(form);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      error.hidden = true;
      const body = { name: name.value.trim(), kind: kind.value, url: url.value.trim(), format: format.value, streams: streams.filter((x) => x.box.checked).map((x) => x.s) };
      for (const input of extra.querySelectorAll("input")) body[input.name] = input.value.trim();
      const res = await call("POST", "/sinks", body);
      if (!res.ok) {
        error.textContent = res.problem.errors?.length ? res.problem.errors.map((e) => `${e.field}: ${e.message}`).join(" ") : `${res.problem.title}: ${res.problem.detail}`;
        error.hidden = false;
        return;
      }
      form.reset();
      drawFields();
      note.textContent = `${res.json.name} added.`;
      if (res.json.secret) {
        const value = el("input", { id: "sink-secret", type: "text", readonly: true, value: res.json.secret });
        const done = el("button", { type: "button", text: "I have stored it" });
        done.addEventListener("click", () => shown.replaceChildren());
        shown.replaceChildren(el("div", { class: "snc-alert" },
          el("p", { text: "The webhook's signing secret: give it to the receiver now, it is not shown again." }),
          el("label", { for: "sink-secret", text: "Signing secret" }), value, done));
        value.focus();
        value.select();
      }
      await load();
    });
  }

  async function act(s, method, path, body, done) {
    const res = await call(method, path, body);
    note.textContent = res.ok ? done(res) : `${s.name}: ${res.problem.title}: ${res.problem.detail}`;
    await load();
  }

  function replayForm(s, cell) {
    const from = el("input", { id: `rp-from-${s.id}`, type: "datetime-local", required: true });
    const to = el("input", { id: `rp-to-${s.id}`, type: "datetime-local", required: true });
    const form = el("form", { class: "replay", "aria-label": `Replay to ${s.name}` },
      el("label", { for: from.id, text: "From (UTC)" }), from, el("label", { for: to.id, text: "To (UTC)" }), to,
      el("button", { type: "submit", text: "Send again" }));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      act(s, "POST", `/sinks/${s.id}/replay`, { from: `${from.value}:00Z`, to: `${to.value}:00Z` }, () => `Replay to ${s.name} queued.`);
    });
    cell.append(form);
    from.focus();
  }

  async function load() {
    const res = await call("GET", "/sinks");
    if (!res.ok) { table.replaceChildren(el("caption", { text: res.problem.detail })); return; }
    const sinks = res.json.sinks;
    table.replaceChildren(el("caption", { text: `${sinks.length} sink${sinks.length === 1 ? "" : "s"}` }),
      el("thead", {}, el("tr", {}, ...["Sink", "State", "Delivered", "Pending", "Last success", "Last error", ...(canChange ? ["Actions"] : [])].map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, ...sinks.map((s) => {
        const cells = [
          el("td", {}, el("strong", { text: s.name }), el("br"), el("span", { class: "small", text: `${KINDS[s.kind]?.label ?? s.kind} · ${s.streams.join(", ")} · ${s.format} · ${s.url}` })),
          el("td", { "data-state": s.state === "active" ? "ok" : "error", text: s.state }),
          el("td", { text: String(s.delivered) }), el("td", { text: String(s.pending) }),
          el("td", { text: s.last_success_at ?? "not yet" }),
          el("td", { text: s.last_error ? `${s.last_error.at}: ${s.last_error.status ?? ""} ${s.last_error.message ?? ""}` : "" }),
        ];
        if (canChange) {
          const cell = el("td", { class: "actions" });
          const button = (label, handler, cls = "secondary") => {
            const b = el("button", { type: "button", class: cls, text: label, "aria-label": `${label} ${s.name}` });
            b.addEventListener("click", handler);
            cell.append(b);
          };
          button("Test", () => act(s, "POST", `/sinks/${s.id}/test`, undefined, (r) => `${s.name}: ${r.json.message}.`));
          button(s.state === "disabled" ? "Enable" : "Disable", () => act(s, "PATCH", `/sinks/${s.id}`, { state: s.state === "disabled" ? "active" : "disabled" }, () => `${s.name} ${s.state === "disabled" ? "enabled" : "disabled"}.`));
          button("Replay", () => replayForm(s, cell));
          button("Delete", () => act(s, "DELETE", `/sinks/${s.id}`, undefined, () => `${s.name} deleted.`), "danger");
          cells.push(cell);
        }
        return el("tr", { "data-sink": s.id }, ...cells);
      })));
  }
  load();
  return { load };
}
