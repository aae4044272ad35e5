// The dashboard (/): every port of the daemon, live from /ws/status.
//
// Each port is one <section class="port" data-port="NAME">, kept across
// updates (only its contents are redrawn), with a link to its terminal, the
// device and its state, the line settings, the traffic counters and the
// clients, each with a Kick button for the rw role. Values carry
// data-field="..." named as in `status --json`.

import { h, bytes, deviceState, followStatus, kick, portsOf, showUser, whoami } from "./common.js";

const portsEl = document.getElementById("ports");
const noPorts = document.getElementById("no-ports");
const feed = document.getElementById("feed");
const message = document.getElementById("message");

let role = "ro";
/** The last document, to redraw when whoami answers after it. */
let last = null;

function field(name, value, title) {
  return h("span", { "data-field": name, title }, value);
}

function row(label, ...values) {
  const dd = h("dd", {});
  values.forEach((v, i) => dd.append(...(i > 0 ? [" · ", v] : [v])));
  return [h("dt", {}, label), dd];
}

function clientsTable(port) {
  const clients = port.clients || [];
  if (clients.length === 0) return h("p", { class: "empty", "data-field": "clients" }, "no clients");
  const head = h(
    "tr",
    {},
    ["#", "peer", "since", "in", "out", "dropped", "discarded"].map((t) => h("th", {}, t)),
    role === "rw" ? h("th", {}, "") : null,
  );
  const rows = clients.map((c) =>
    h(
      "tr",
      { "data-client": c.id },
      h("td", {}, String(c.id)),
      h("td", { class: "peer", title: c.identity || "" }, c.peer),
      h("td", { title: c.connected_since }, sinceText(c.connected_since)),
      h("td", { title: `${c.bytes_in} bytes to the device` }, bytes(c.bytes_in)),
      h("td", { title: `${c.bytes_out} device bytes, ${c.queued} queued now` }, bytes(c.bytes_out)),
      h("td", { class: c.dropped > 0 ? "warn" : "" }, String(c.dropped)),
      h("td", {}, String(c.discarded)),
      role === "rw"
        ? h("td", {}, h("button", { type: "button", class: "kick", onclick: () => doKick(port.name, c.id) }, "Kick"))
        : null,
    ),
  );
  return h("table", { class: "clients", "data-field": "clients" }, h("thead", {}, head), h("tbody", {}, rows));
}

/** `12:03:04` today, the date before it otherwise. */
function sinceText(rfc3339) {
  const t = new Date(rfc3339);
  if (Number.isNaN(t.getTime())) return rfc3339 || "";
  const now = new Date();
  const time = t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  return t.toDateString() === now.toDateString() ? time : `${t.toLocaleDateString()} ${time}`;
}

async function doKick(port, id) {
  message.textContent = `kicking client #${id} of ${port}…`;
  try {
    await kick(port, id);
    message.textContent = `kicked client #${id} of ${port}`;
  } catch (e) {
    message.textContent = `kick #${id} of ${port}: ${e.message}`;
  }
}

function render(section, port) {
  const state = deviceState(port);
  section.dataset.state = state.word;
  const link = h("a", { href: `/ports/${encodeURIComponent(port.name)}` }, port.name);
  section.replaceChildren(
    h(
      "h2",
      {},
      link,
      h("span", { class: `badge state-${state.word}`, "data-field": "device_state", title: port.device_since }, state.word),
    ),
    h(
      "dl",
      {},
      row("device", field("device", port.device + (state.detail && state.word === "open" ? ` (${state.detail})` : ""))),
      state.word === "reconnecting" ? row("error", field("error", state.detail)) : null,
      row("line", field("line", `${port.line} · writers ${port.writers}`)),
      row(
        "traffic",
        field(
          "bytes_from_device",
          `from device ${bytes(port.bytes_from_device)}`,
          `${port.bytes_from_device} bytes`,
        ),
        field("bytes_to_device", `to device ${bytes(port.bytes_to_device)}`, `${port.bytes_to_device} bytes`),
      ),
      row(
        "losses",
        field("dropped", `dropped ${port.dropped}`),
        field("kicked", `kicked ${port.kicked}`),
        field("refused", `refused ${port.refused}`),
      ),
      row("write lock", field("write_lock", port.write_lock || "free")),
      row("endpoints", field("endpoints", (port.endpoints || []).join(", ") || "none")),
      port.traffic_log
        ? row(
            "traffic log",
            field("traffic_log", port.traffic_log),
            h("a", { href: `/api/ports/${encodeURIComponent(port.name)}/log?download=1`, download: true }, "download"),
          )
        : null,
      h("dt", {}, "clients"),
      h("dd", { class: "wide" }, clientsTable(port)),
    ),
  );
}

function update(doc) {
  last = doc;
  const ports = portsOf(doc);
  const seen = new Set();
  for (const port of ports) {
    if (!port || typeof port.name !== "string") continue;
    seen.add(port.name);
    let section = portsEl.querySelector(`section.port[data-port="${CSS.escape(port.name)}"]`);
    if (!section) {
      section = h("section", { class: "port", "data-port": port.name });
      portsEl.append(section);
    }
    render(section, port);
  }
  for (const section of portsEl.querySelectorAll("section.port")) {
    if (!seen.has(section.dataset.port)) section.remove();
  }
  noPorts.hidden = seen.size > 0;
}

followStatus(update, (state) => {
  feed.textContent = state;
  feed.dataset.state = state;
});

whoami()
  .then((me) => {
    if (!me) return;
    role = me.role;
    showUser(me);
    if (last) update(last);
  })
  .catch((e) => {
    message.textContent = e.message;
  });
