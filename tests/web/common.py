"""Shared pieces of the web console's browser tests (issue 23).

Each script in this directory drives headless Chromium through Debian's
chromedriver (installed by scripts/test; nothing is downloaded) against a
serialhub that the Rust test in tests/it/web_browser.rs started. The Rust
side and a script talk over the script's stdin and stdout, one line each:

    STEP NAME {json}   the script reached NAME and waits; the Rust test does
                       what that step needs (sends device bytes, checks
                       `status --json`) and answers with a line `go`
    RESULT {json}      the last line: what the script measured

A failure raises: the script prints why (with the page's state and its
console) on stderr and exits non-zero.
"""

import base64
import json
import os
import shutil
import socket
import sys
import tempfile
import time

# Never let selenium look for (or download) a driver or a browser.
os.environ["SE_OFFLINE"] = "true"

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

# As the machine's own check starts it: without the background-networking
# flags Chromium keeps trying hosts this closed network refuses.
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # A window in the background must go on rendering and acking like the
    # one in front: the tests open several.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]

_profiles = []
_drivers = []


def base_url():
    """The listener's address, the script's first argument (127.0.0.1:PORT)."""
    return "http://" + sys.argv[1]


def port_name():
    """The port's name, the script's second argument."""
    return sys.argv[2]


def browser(width=1100, height=700):
    """A new headless Chromium with its own empty profile."""
    profile = tempfile.mkdtemp(prefix="serialhub-chromium-")
    _profiles.append(profile)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for f in FLAGS + [f"--window-size={width},{height}", f"--user-data-dir={profile}"]:
        opts.add_argument(f)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    d.set_page_load_timeout(30)
    d.set_script_timeout(30)
    _drivers.append(d)
    return d


def quit_all():
    for d in _drivers:
        try:
            d.quit()
        except Exception:
            pass
    _drivers.clear()
    for p in _profiles:
        shutil.rmtree(p, ignore_errors=True)


def step(name, **info):
    """Tells the Rust test that NAME is reached and waits for its `go`."""
    print(f"STEP {name} {json.dumps(info)}", flush=True)
    line = sys.stdin.readline()
    if line.strip() != "go":
        raise AssertionError(f"step {name}: the test answered {line!r}, not go")


def result(**info):
    print(f"RESULT {json.dumps(info)}", flush=True)


def describe(d):
    """What a failure report shows of a page."""
    try:
        parts = [f"url: {d.current_url}"]
        for sel in ["#state", "#role"]:
            els = d.find_elements(By.CSS_SELECTOR, sel)
            if els:
                parts.append(f"{sel}: {els[0].text!r}")
        parts.append(f"rows: {rows(d)[-600:]!r}")
        parts.append(f"window.serialhub: {counters(d)}")
        logs = d.get_log("browser")
        parts += [f"console: {e.get('level')} {e.get('message')}" for e in logs[-15:]]
        return "\n  ".join(parts)
    except Exception as e:  # the page (or browser) is gone
        return f"(page not readable: {e})"


def wait(what, cond, timeout=20.0, page=None, every=0.05):
    """Polls `cond` until it returns something true, and returns that."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            got = cond()
        except Exception as e:  # the element is not there yet
            got, last = None, e
        if got:
            return got
        if time.monotonic() > deadline:
            extra = describe(page) if page is not None else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last error: {last})\n  {extra}")
        time.sleep(every)


def rows(d):
    """The terminal's visible rows as text."""
    return d.execute_script(
        "const r = document.querySelector('#terminal .xterm-rows');"
        "return r ? r.innerText : '';"
    ) or ""


def counters(d):
    """The page's `window.serialhub` ({offset, received, acked, dropped})."""
    return d.execute_script(
        "const s = window.serialhub;"
        "return s ? {offset: s.offset, received: s.received, acked: s.acked, dropped: s.dropped} : null;"
    )


def state(d):
    els = d.find_elements(By.ID, "state")
    return els[0].text.strip() if els else ""


def open_terminal(d, name, timeout=20.0):
    """Opens /ports/NAME and waits until its terminal is connected."""
    d.get(f"{base_url()}/ports/{name}")
    wait_connected(d, timeout)


def wait_connected(d, timeout=20.0):
    wait("the terminal to connect (#state 'connected')",
         lambda: state(d).startswith("connected"), timeout, d)
    wait("the terminal's rows", lambda: d.find_elements(By.CSS_SELECTOR, "#terminal .xterm-rows"), timeout, d)


def type_keys(d, text, enter=False):
    """Types into the terminal as a person would: focus it, then keys."""
    box = d.find_element(By.CSS_SELECTOR, "#terminal textarea.xterm-helper-textarea")
    d.execute_script("arguments[0].focus();", box)
    keys = [text] + ([Keys.ENTER] if enter else [])
    box.send_keys(*keys)


def login(d, user, password, next_path="/"):
    """Fills the login form; returns the page's URL afterwards."""
    d.get(f"{base_url()}/login?next={next_path}")
    form = wait("the login form", lambda: d.find_element(By.ID, "login"), page=d)
    form.find_element(By.NAME, "username").send_keys(user)
    form.find_element(By.NAME, "password").send_keys(password)
    form.find_element(By.NAME, "password").send_keys(Keys.ENTER)


def heap(d):
    """The tab's live JS heap in bytes, after a full garbage collection."""
    d.execute_cdp_cmd("Performance.enable", {})
    d.execute_cdp_cmd("HeapProfiler.collectGarbage", {})
    m = d.execute_cdp_cmd("Performance.getMetrics", {})
    return next(int(x["value"]) for x in m["metrics"] if x["name"] == "JSHeapUsedSize")


# Records what reaches the page's WebSockets (binary frames as latin-1 text),
# so a test can tell a typed key's echo arrived even while a flood scrolls it
# off the screen at once. Injected by CDP before the page's own scripts.
TAP = r"""
(() => {
  const Native = window.WebSocket;
  // `ignore`: characters left out of `tail` (a flood's), since typed keys
  // come back one by one, between the flood's lines.
  const tap = { bytes: 0, tail: "", want: [], found: {}, ignore: null };
  window.__serialhubTap = tap;
  const feed = (buf) => {
    let s = new TextDecoder("latin1").decode(buf);
    tap.bytes += buf.byteLength;
    if (tap.ignore) s = s.replace(tap.ignore, "");
    tap.tail = (tap.tail + s).slice(-8192);
    for (const w of tap.want) {
      if (!(w in tap.found) && tap.tail.includes(w)) tap.found[w] = tap.bytes;
    }
  };
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      if (String(args[0]).includes("/ws/ports/")) {
        tap.bytes = 0;
        this.addEventListener("message", (e) => {
          if (typeof e.data === "string") return;
          if (e.data instanceof ArrayBuffer) feed(e.data);
          else if (e.data && e.data.arrayBuffer) e.data.arrayBuffer().then(feed);
        });
      }
    }
  };
})();
"""


def install_tap(d):
    d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": TAP})


def tap_ignore(d, regex):
    """Leaves the characters `regex` (a JS character class) out of what the
    tap searches."""
    d.execute_script("window.__serialhubTap.ignore = new RegExp(arguments[0], 'g');", regex)


def tap_want(d, marker):
    d.execute_script("window.__serialhubTap.want.push(arguments[0]);", marker)


def tap_found(d, marker):
    """The byte count on the terminal's socket when `marker` had arrived."""
    return d.execute_script("return window.__serialhubTap.found[arguments[0]] ?? null;", marker)


def ws_upgrade(host_port, path, origin=None, cookie=None):
    """A raw WebSocket upgrade request; returns the response's status line."""
    key = base64.b64encode(os.urandom(16)).decode()
    head = [
        f"GET {path} HTTP/1.1",
        f"Host: {host_port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin is not None:
        head.append(f"Origin: {origin}")
    if cookie is not None:
        head.append(f"Cookie: {cookie}")
    host, port = host_port.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        got = b""
        while b"\r\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    return got.split(b"\r\n", 1)[0].decode(errors="replace")


def main(body):
    """Runs `body()`, always closing the browsers; exit 1 with why on failure."""
    try:
        body()
    except BaseException as e:  # report anything, including a selenium error
        for d in _drivers:
            print(f"page at failure:\n  {describe(d)}", file=sys.stderr)
        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        quit_all()
        sys.exit(1)
    quit_all()
