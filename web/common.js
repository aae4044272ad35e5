// What the dashboard and the terminal page share: building elements, the
// live status feed (/ws/status), who the user is (/api/whoami), kicking a
// client, and how a port's state reads.
//
// No framework and no build step: the server embeds these files as they are,
// and a strict Content-Security-Policy (default-src 'self') holds, so nothing
// here is inline in the HTML and nothing is fetched from elsewhere.

/** A new element: h("a", {href: "/"}, "text", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** The ws:// or wss:// URL of a path on this server. */
export function wsUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

/** The ports of a status document: `status --json` prints a list; an
 * object with `ports` is taken too. */
export function portsOf(doc) {
  if (Array.isArray(doc)) return doc;
  if (doc && Array.isArray(doc.ports)) return doc.ports;
  return [];
}

/** `1.2 MiB` for people; exact counts stay in the title. */
export function bytes(n) {
  n = Number(n) || 0;
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = -1;
  do {
    v /= 1024;
    u += 1;
  } while (v >= 1024 && u < units.length - 1);
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/** The device's state as a word and the detail after it. */
export function deviceState(port) {
  const s = port.device_state || {};
  switch (s.state) {
    case "open":
      return { word: "open", detail: s.tty || "" };
    case "reconnecting":
      return { word: "reconnecting", detail: s.error || "" };
    case undefined:
      return { word: "unknown", detail: "" };
    default:
      return { word: s.state, detail: "" };
  }
}

/** Whether the port keeps a traffic log: its status names the directory
 * (`traffic_log`), absent when it keeps none. */
export function hasTrafficLog(port) {
  return Boolean(port.traffic_log);
}

/** GET /api/whoami: {user, role, auth}; a 401 sends the page to the login. */
export async function whoami() {
  const response = await fetch("/api/whoami", { credentials: "same-origin" });
  if (response.status === 401) {
    toLogin();
    return null;
  }
  if (!response.ok) throw new Error(`whoami: HTTP ${response.status}`);
  return response.json();
}

/** Leaves for the login form, to come back here. */
export function toLogin() {
  const next = location.pathname + location.search;
  location.assign(`/login?next=${encodeURIComponent(next)}`);
}

/** Fills the header's user, role and logout form from whoami. */
export function showUser(me) {
  const who = document.getElementById("whoami");
  if (!who || !me) return;
  // The terminal page shows the port's own role (#role) already.
  const roleShown = document.getElementById("role") !== null;
  who.textContent = me.user ? `${me.user}${roleShown ? "" : ` (${me.role})`}` : roleShown ? "" : `role ${me.role}`;
  who.title = `authentication: ${me.auth}`;
  const logout = document.getElementById("logout");
  if (logout) logout.hidden = me.auth !== "password";
}

/** POST /api/ports/NAME/clients/ID/kick; throws with the server's error. */
export async function kick(port, client) {
  const url = `/api/ports/${encodeURIComponent(port)}/clients/${encodeURIComponent(client)}/kick`;
  const response = await fetch(url, { method: "POST", credentials: "same-origin" });
  let answer = {};
  try {
    answer = await response.json();
  } catch {
    // Not JSON: the status code says enough.
  }
  if (response.status === 401) toLogin();
  if (!response.ok || answer.ok === false) {
    throw new Error(answer.error || `HTTP ${response.status}`);
  }
}

/**
 * Follows /ws/status: onDoc(document) for every status document, onState
 * ("live" | "reconnecting") when the feed comes or goes. A lost feed is
 * opened again with a growing pause (0.5 s doubling to 10 s), so a restarted
 * daemon finds its pages again without a flood of attempts.
 */
export function followStatus(onDoc, onState) {
  let pause = 500;
  const open = () => {
    const ws = new WebSocket(wsUrl("/ws/status"));
    ws.addEventListener("open", () => {
      pause = 500;
      onState("live");
    });
    ws.addEventListener("message", (event) => {
      if (typeof event.data !== "string") return;
      let doc;
      try {
        doc = JSON.parse(event.data);
      } catch {
        return;
      }
      onDoc(doc);
    });
    ws.addEventListener("close", () => {
      onState("reconnecting");
      setTimeout(open, pause);
      pause = Math.min(pause * 2, 10000);
      // A feed refused for want of a session is a login to do.
      fetch("/api/whoami", { credentials: "same-origin" })
        .then((r) => {
          if (r.status === 401) toLogin();
        })
        .catch(() => {});
    });
  };
  open();
}
