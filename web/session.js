// The page side of the terminal WebSocket (/ws/ports/NAME): one viewer's
// connection to a port, kept across network blips.
//
// Protocol (docs/web.md): binary frames are terminal bytes both ways; text
// frames are JSON with a `type`. The server says `hello` first
// ({from, history, window, gap, client, role, peer}), then device bytes
// (the first `history` of them said before this viewer came), `dropped`
// ({bytes, total}) for bytes this viewer did not get, `answer` ({id, ok,
// error}) for each request, and `closed` ({reason}) before it closes on
// purpose (kicked, port gone, shutdown).
//
// Flow control: the server keeps at most `window` bytes sent and not
// acknowledged. The page acknowledges bytes once xterm has rendered them
// (its write callback), in batches: every ACK_BATCH bytes, or as soon as
// everything received is rendered (idle), so a tab that cannot keep up
// stops the flow instead of queueing without bound.
//
// Offsets: `offset` is the device offset of the next byte: hello.from, plus
// every binary byte, plus every dropped byte (and, on resuming, the gap the
// port's history could no longer fill). After an unexpected close the
// session reconnects with `?since=offset`, so it resumes with no gap and no
// duplicate while the port's history still holds those bytes (a `gap` in
// the new hello says how many it no longer held). After `closed` it stays
// closed until reconnect() is called (the page's Reconnect button).

import { wsUrl } from "./common.js";

/** Bytes rendered between acknowledgements, at most: well under the
 * server's window (at least 64 KiB), so the window never runs dry. */
const ACK_BATCH = 16 * 1024;
/** When everything received is rendered, the ack waits this long for more
 * (a trickle of echoes costs one ack per burst, not one per frame). */
const ACK_IDLE_MS = 10;
/** Largest binary frame sent: the server closes on a message over 64 KiB. */
const MAX_FRAME = 16 * 1024;
/** A request with no answer by then is given up (the socket may be dead). */
const REQUEST_TIMEOUT_MS = 15000;
/** Pauses between reconnection attempts: doubling from the first to the last. */
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 8000;

/**
 * handlers:
 *  state(text)                       "connecting", "connected", "reconnecting", "closed: REASON"
 *  hello(msg, {resumed, skipped})    a connection is up
 *  data(bytes, history, rendered)    device bytes to show; call rendered() once shown
 *  marker(kind, text)                something to show between the bytes (dropped, gap, live)
 *  closed(reason)                    the server closed on purpose: offer Reconnect
 */
export class Session {
  constructor(port, handlers, stats) {
    this.port = port;
    this.handlers = handlers;
    /** Page-wide counters, exposed as window.serialhub for tests. */
    this.stats = stats;
    this.ws = null;
    /** Bumped per connection: callbacks of an old one are ignored. */
    this.generation = 0;
    this.nextId = 1;
    this.pending = new Map();
    this.retryMs = RETRY_FIRST_MS;
    this.retryTimer = null;
    this.everConnected = false;
    this.encoder = new TextEncoder();
  }

  /** Opens the connection; resumes from the current offset after the first. */
  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.generation += 1;
    const generation = this.generation;
    const since = this.everConnected ? `?since=${this.stats.offset}` : "";
    const conn = {
      generation,
      hello: null,
      closedReason: null,
      historyLeft: 0,
      skip: 0,
      received: 0,
      rendered: 0,
      acked: 0,
      ackTimer: null,
    };
    this.conn = conn;
    this.handlers.state(this.everConnected ? "reconnecting" : "connecting");
    const ws = new WebSocket(wsUrl(`/ws/ports/${encodeURIComponent(this.port)}${since}`));
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.addEventListener("message", (event) => {
      if (generation !== this.generation) return;
      if (typeof event.data === "string") this.onText(conn, event.data);
      else this.onBinary(conn, new Uint8Array(event.data));
    });
    ws.addEventListener("close", () => {
      if (generation !== this.generation) return;
      this.onClose(conn);
    });
  }

  /** The Reconnect button: a new connection now, resuming where this ended. */
  reconnect() {
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close();
    this.retryMs = RETRY_FIRST_MS;
    this.connect();
  }

  get connected() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN && this.conn && this.conn.hello);
  }

  onText(conn, text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    switch (msg.type) {
      case "hello":
        this.onHello(conn, msg);
        break;
      case "dropped": {
        const n = Number(msg.bytes) || 0;
        this.stats.dropped += n;
        this.stats.offset += n;
        this.handlers.marker("dropped", `[… ${n} bytes dropped …]`);
        break;
      }
      case "answer": {
        const waiting = this.pending.get(msg.id);
        if (!waiting) break;
        this.pending.delete(msg.id);
        clearTimeout(waiting.timer);
        if (msg.ok) waiting.resolve(msg);
        else waiting.reject(new Error(msg.error || "refused"));
        break;
      }
      case "closed":
        conn.closedReason = String(msg.reason || "closed");
        break;
      default:
        break;
    }
  }

  onHello(conn, msg) {
    const from = Number(msg.from) || 0;
    const resumed = this.everConnected;
    let skipped = 0;
    if (resumed) {
      // Resuming: the server starts at `since` (or later, with a gap). A
      // start before our offset would repeat bytes already shown: skip them.
      if (from < this.stats.offset) {
        conn.skip = this.stats.offset - from;
        skipped = conn.skip;
      } else if (from > this.stats.offset) {
        // Bytes the port no longer held: lost to this page like dropped
        // ones (a tab kicked while frozen comes back this way).
        const lost = from - this.stats.offset;
        this.stats.dropped += lost;
        this.stats.offset = from;
        this.handlers.marker("gap", `[… ${lost} bytes lost while disconnected …]`);
      }
    } else {
      this.stats.offset = from;
    }
    conn.hello = msg;
    conn.historyLeft = resumed ? 0 : Number(msg.history) || 0;
    this.everConnected = true;
    this.retryMs = RETRY_FIRST_MS;
    Object.assign(this.stats, {
      client: msg.client,
      role: msg.role,
      peer: msg.peer,
      window: msg.window,
      history: Number(msg.history) || 0,
      gap: Number(msg.gap) || 0,
      connections: this.stats.connections + 1,
    });
    this.handlers.hello(msg, { resumed, skipped });
    this.handlers.state("connected");
  }

  onBinary(conn, bytes) {
    const n = bytes.length;
    conn.received += n;
    this.stats.received += n;
    let data = bytes;
    if (conn.skip > 0) {
      // Already shown before the reconnection: rendered at once, no offset.
      const skip = Math.min(conn.skip, data.length);
      conn.skip -= skip;
      data = data.subarray(skip);
      this.rendered(conn, skip);
      if (data.length === 0) return;
    }
    this.stats.offset += data.length;
    if (conn.historyLeft > 0) {
      const take = Math.min(conn.historyLeft, data.length);
      conn.historyLeft -= take;
      this.handlers.data(data.subarray(0, take), true, () => this.rendered(conn, take));
      if (conn.historyLeft === 0) this.handlers.marker("live", "— live —");
      data = data.subarray(take);
      if (data.length === 0) return;
    }
    const len = data.length;
    this.handlers.data(data, false, () => this.rendered(conn, len));
  }

  /** xterm has shown `n` more bytes of this connection: acknowledge them. */
  rendered(conn, n) {
    conn.rendered += n;
    if (conn.generation !== this.generation) return;
    if (conn.rendered - conn.acked >= ACK_BATCH) {
      this.sendAck(conn);
    } else if (conn.rendered === conn.received && conn.ackTimer === null) {
      conn.ackTimer = setTimeout(() => this.sendAck(conn), ACK_IDLE_MS);
    }
  }

  sendAck(conn) {
    clearTimeout(conn.ackTimer);
    conn.ackTimer = null;
    if (conn.generation !== this.generation || conn.rendered === conn.acked) return;
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify({ type: "ack", bytes: conn.rendered }));
    this.stats.acked += conn.rendered - conn.acked;
    conn.acked = conn.rendered;
  }

  onClose(conn) {
    clearTimeout(conn.ackTimer);
    for (const [, waiting] of this.pending) {
      clearTimeout(waiting.timer);
      waiting.reject(new Error("the connection closed"));
    }
    this.pending.clear();
    if (conn.closedReason !== null) {
      this.handlers.state(`closed: ${conn.closedReason}`);
      this.handlers.closed(conn.closedReason);
      return;
    }
    // A network blip, a restart, or a refusal before the upgrade (the
    // browser cannot tell these apart): try again, more slowly each time.
    this.handlers.state("reconnecting");
    this.retryTimer = setTimeout(() => this.connect(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    this.handlers.lost?.();
  }

  /** Typed or pasted bytes for the device, in frames the server accepts. */
  send(text) {
    if (!this.connected) return false;
    const bytes = typeof text === "string" ? this.encoder.encode(text) : text;
    for (let at = 0; at < bytes.length; at += MAX_FRAME) {
      this.ws.send(bytes.subarray(at, at + MAX_FRAME));
    }
    return true;
  }

  /** A control request ({type: "set", ...}); resolves with its answer. */
  request(body) {
    if (!this.connected) return Promise.reject(new Error("not connected"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error("no answer"));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ ...body, id }));
    });
  }
}
