// The terminal page (/ports/NAME): xterm.js on the port's terminal
// WebSocket (session.js), and beside it the port's controls and clients.
//
// xterm.js and its fit addon are the vendored UMD builds (web/vendor/xterm),
// loaded by port.html before this module: window.Terminal and
// window.FitAddon. Controls are answered by the server; a control changes
// its look only when its answer says ok. For tests the page keeps
// window.serialhub = {offset, received, acked, dropped, ...} current.

import { bytes, deviceState, followStatus, hasTrafficLog, h, kick, portsOf, showUser, toLogin, whoami } from "./common.js";
import { HexView } from "./hexview.js";
import { Session } from "./session.js";
import { adoptXtermStyles } from "./xterm-csp.js";

const $ = (id) => document.getElementById(id);
const name = decodeURIComponent(location.pathname.replace(/^\/ports\//, "").replace(/\/$/, ""));
document.title = `${name} · serialhub`;
$("port-name").textContent = name;

/** Largest paste sent at once: a browser-side bound on what waits to be sent. */
const MAX_PASTE = 1024 * 1024;
/** Lines of scrollback xterm keeps: what bounds the tab's memory in a flood. */
const SCROLLBACK = 5000;

const stats = {
  offset: 0,
  received: 0,
  acked: 0,
  dropped: 0,
  state: "connecting",
  client: null,
  role: null,
  peer: null,
  window: null,
  history: 0,
  gap: 0,
  connections: 0,
};
window.serialhub = stats;

// --- the terminal --------------------------------------------------------

const term = new window.Terminal({
  convertEol: true,
  scrollback: SCROLLBACK,
  fontSize: window.matchMedia("(max-width: 600px)").matches ? 12 : 14,
  fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
  theme: { background: "#101418", foreground: "#d8dee4" },
});
const fit = new window.FitAddon.FitAddon();
term.loadAddon(fit);
const container = $("terminal");
term.open(container);
const syncStyles = adoptXtermStyles(container);
const refit = () => {
  try {
    fit.fit();
  } catch {
    // Not laid out yet (hidden): the next resize fits it.
  }
  syncStyles();
};
new ResizeObserver(refit).observe(container);
refit();

let hex = null; // a HexView while the hex view is on
const MARK = "\x1b[0;33m";
const DIM = "\x1b[2m";
const RESET = "\x1b[0m";

/** History's bytes with every SGR reset (ESC [ m, ESC [ 0 m) made to keep
 * the dim on, so the whole history stays marked. A reset split between two
 * frames is left as it is: the rest of that frame shows undimmed. */
function keepDim(bytes) {
  let from = 0;
  const parts = [];
  for (let i = 0; i + 2 < bytes.length; i++) {
    if (bytes[i] !== 0x1b || bytes[i + 1] !== 0x5b) continue;
    const zero = bytes[i + 2] === 0x30 ? 1 : 0;
    if (bytes[i + 2 + zero] !== 0x6d) continue; // "m"
    parts.push(bytes.subarray(from, i), DIM_RESET);
    from = i + 3 + zero;
  }
  if (parts.length === 0) return bytes;
  parts.push(bytes.subarray(from));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
const DIM_RESET = new TextEncoder().encode("\x1b[0;2m");

function showMarker(kind, text) {
  // A dropped marker comes after the offset moved past the dropped bytes;
  // the live marker sits between bytes, where the hex view already is.
  const restart = hex ? hex.restart(kind === "live" ? undefined : stats.offset) : "";
  const tail = kind === "live" ? `${RESET}\r\n${MARK}${text}${RESET}\r\n` : `\r\n${MARK}${text}${RESET}\r\n`;
  term.write(restart + tail);
}

const session = new Session(
  name,
  {
    state(text) {
      stats.state = text;
      $("state").textContent = text;
      $("state").dataset.state = text.split(":")[0];
      $("reconnect").hidden = !text.startsWith("closed");
      showStatusLine();
    },
    hello(msg, { resumed }) {
      setRole(msg.role);
      if (!resumed && Number(msg.history) > 0) {
        term.write(`${MARK}— history —${RESET}\r\n${DIM}`);
      }
      if (hex) term.write(hex.restart(stats.offset));
    },
    data(data, history, rendered) {
      let out = hex ? hex.feed(data) : data;
      if (history) out = hex ? DIM + out : keepDim(out);
      term.write(out, rendered);
    },
    marker: showMarker,
    closed() {
      $("reconnect").focus();
    },
    lost() {
      // A refusal for want of a session looks like a blip: ask.
      fetch("/api/whoami", { credentials: "same-origin" })
        .then((r) => {
          if (r.status === 401) toLogin();
        })
        .catch(() => {});
    },
  },
  stats,
);

let toldReadOnly = false;
term.onData((data) => {
  if (!session.send(data)) flash("not connected: typing is not sent");
  else if (stats.role !== "rw" && !toldReadOnly) {
    toldReadOnly = true;
    flash("read only: the server discards what you type");
  }
});
term.onBinary((data) => {
  session.send(Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff));
});

$("reconnect").addEventListener("click", () => session.reconnect());

// --- role ------------------------------------------------------------------

const RW_ONLY = ["baud", "data-bits", "parity", "stop-bits", "flow-control", "apply", "dtr", "rts", "break", "lock", "paste"];

function setRole(role) {
  stats.role = role;
  $("role").textContent = role;
  const ro = role !== "rw";
  document.body.classList.toggle("read-only", ro);
  for (const id of RW_ONLY) $(id).disabled = ro;
  // Typing stays on: the server discards a read-only viewer's bytes and
  // counts them (status `discarded`), as for an access=ro TCP client.
  term.options.disableStdin = false;
  syncStyles();
  term.focus();
}
setRole("ro"); // until hello says otherwise

// --- controls ----------------------------------------------------------------

let flashTimer = null;
function flash(text) {
  $("message").textContent = text;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => {
    $("message").textContent = "";
  }, 6000);
}

async function ask(what, body) {
  try {
    await session.request(body);
    flash(`${what}: done`);
    return true;
  } catch (e) {
    flash(`${what}: ${e.message}`);
    return false;
  }
}

function pressed(id) {
  return $(id).getAttribute("aria-pressed") === "true";
}
function press(id, on) {
  $(id).setAttribute("aria-pressed", on ? "true" : "false");
}

let formDirty = false;
$("settings").addEventListener("input", () => {
  formDirty = true;
});
$("settings").addEventListener("submit", async (event) => {
  event.preventDefault();
  const baud = Number($("baud").value);
  if (!Number.isInteger(baud) || baud < 50 || baud > 20000000) {
    flash("baud: a whole number from 50 to 20000000");
    return;
  }
  const ok = await ask("line settings", {
    type: "set",
    baud,
    data_bits: Number($("data-bits").value),
    parity: $("parity").value,
    stop_bits: $("stop-bits").value,
    flow_control: $("flow-control").value,
  });
  if (ok) formDirty = false;
});

for (const line of ["dtr", "rts"]) {
  $(line).addEventListener("click", async () => {
    const on = !pressed(line);
    if (await ask(line.toUpperCase(), { type: "signal", [line]: on })) press(line, on);
  });
}
$("break").addEventListener("click", () => ask("break", { type: "break", ms: 250 }));
$("lock").addEventListener("click", async () => {
  const take = !pressed("lock");
  if (await ask(take ? "write lock" : "unlock", { type: take ? "lock" : "unlock" })) press("lock", take);
});

$("hex").addEventListener("click", () => {
  const on = !pressed("hex");
  press("hex", on);
  if (on) {
    hex = new HexView(stats.offset);
    term.write(`\r\n${MARK}— hex view —${RESET}\r\n`);
  } else {
    term.write(`${hex.restart(stats.offset)}${MARK}— text view —${RESET}\r\n`);
    hex = null;
  }
});

$("clear").addEventListener("click", () => term.clear());

$("paste").addEventListener("click", async () => {
  let text = null;
  try {
    text = await navigator.clipboard.readText();
  } catch {
    // No clipboard access (plain HTTP on a network, or refused): ask.
    text = window.prompt("Text to send to the device:");
  }
  if (!text) return;
  if (text.length > MAX_PASTE) {
    flash(`paste: at most ${MAX_PASTE} characters at once`);
    return;
  }
  term.paste(text);
  term.focus();
});

// --- the port's status (/ws/status) ----------------------------------------

function showDownload(port) {
  const link = $("download-log");
  link.href = `/api/ports/${encodeURIComponent(name)}/log?download=1`;
  link.hidden = !hasTrafficLog(port);
}

/** `115200 8N1 rtscts` into the form's fields, unless the user is editing. */
function showLine(port) {
  const m = /^(\d+) ([5-8])([NOE])([12])(?: (rtscts|xonxoff))?/.exec(port.line || "");
  $("line-now").textContent = `now ${port.line}${port.settings_changed_by ? `, set by ${port.settings_changed_by}` : ""}`;
  if (!m || formDirty) return;
  $("baud").value = m[1];
  $("data-bits").value = m[2];
  $("parity").value = { N: "none", O: "odd", E: "even" }[m[3]];
  $("stop-bits").value = m[4];
  $("flow-control").value = m[5] || "none";
}

function mine(holder) {
  if (!holder || stats.client === null) return false;
  return holder.startsWith(`#${stats.client} `) || (stats.peer !== null && holder.includes(stats.peer));
}

function showClients(port) {
  const items = (port.clients || []).map((c) => {
    const self = c.id === stats.client;
    return h(
      "li",
      { "data-client": c.id, class: self ? "self" : "" },
      h("span", { class: "peer" }, `#${c.id} ${c.peer}${self ? " (this tab)" : ""}`),
      h(
        "span",
        { class: "counts" },
        `in ${bytes(c.bytes_in)} · out ${bytes(c.bytes_out)}${c.dropped ? ` · dropped ${c.dropped}` : ""}`,
      ),
      stats.role === "rw" && !self
        ? h(
            "button",
            {
              type: "button",
              class: "kick",
              onclick: () =>
                kick(name, c.id).then(
                  () => flash(`kicked #${c.id}`),
                  (e) => flash(`kick #${c.id}: ${e.message}`),
                ),
            },
            "Kick",
          )
        : null,
    );
  });
  $("clients").replaceChildren(...items);
}

function onStatus(doc) {
  const port = portsOf(doc).find((p) => p && p.name === name);
  if (!port) {
    $("device").textContent = "no such port on this daemon";
    return;
  }
  const state = deviceState(port);
  $("device").textContent = `${port.device}: ${state.word}${state.detail ? ` (${state.detail})` : ""}`;
  $("device").dataset.state = state.word;
  showLine(port);
  const holder = port.write_lock;
  press("lock", mine(holder));
  $("lock-holder").textContent = holder ? `write lock held by ${holder}` : "write lock free";
  showClients(port);
  showDownload(port);
}

function showStatusLine() {
  const who = stats.client === null ? "" : `client #${stats.client} · `;
  const drops = stats.dropped ? ` · dropped ${stats.dropped}` : "";
  $("status-line").textContent = `${who}${stats.state} · offset ${stats.offset}${drops}`;
}
setInterval(showStatusLine, 1000);

followStatus(onStatus, () => {});
whoami()
  .then(showUser)
  .catch(() => {});
session.connect();
