"""A flood at 115200 baud into the terminal for SECS seconds: the tab's JS
heap stays bounded (Chrome DevTools' Performance.getMetrics, after a forced
garbage collection) and keys typed meanwhile come back through the device
and are rendered by xterm. The Rust test floods the port (a TCP client
writing into sim:echo at most at the line rate) between the steps.

    python3 flood.py 127.0.0.1:PORT NAME SECS
"""

import sys
import time

from common import (browser, counters, heap, install_tap, main, open_terminal,
                    port_name, result, state, step, tap_found, tap_ignore,
                    tap_want, type_keys, wait)

# What the test's flood lines are made of (tests/it/common/browser.rs):
# typed markers use none of it, so they are found between its lines.
FLOOD_CHARS = "[a-zA-T0-9 \\r\\n]"


def marker_of(k):
    """`#` and k in base 6 with the letters U to Z, then `!`."""
    digits = ""
    while True:
        digits = "UVWXYZ"[k % 6] + digits
        k //= 6
        if k == 0:
            return f"#{digits}!"


def body():
    name = port_name()
    secs = float(sys.argv[3])
    d = browser()
    install_tap(d)
    open_terminal(d, name)
    tap_ignore(d, FLOOD_CHARS)
    heaps = [(0.0, heap(d))]
    step("connected")  # the flood starts
    start = time.monotonic()
    echoes = []
    k = 0
    while time.monotonic() - start < secs:
        k += 1
        marker = marker_of(k)
        tap_want(d, marker)
        sent = time.monotonic()
        type_keys(d, marker, enter=True)
        # Each key goes on its own, so the echo comes back between the
        # flood's lines: found in what is left without them.
        at = wait(f"{marker} echoed during the flood", lambda: tap_found(d, marker), timeout=10, page=d)
        echo_ms = (time.monotonic() - sent) * 1e3
        # Rendered: xterm has acked every byte up to the echo.
        wait(f"{marker} rendered (acked)", lambda: counters(d)["acked"] >= at, timeout=10, page=d)
        echoes.append(round(echo_ms, 1))
        heaps.append((round(time.monotonic() - start, 1), heap(d)))
        time.sleep(min(2.0, max(0.0, secs - (time.monotonic() - start))))
    c = counters(d)
    st = state(d)
    step("flooded")  # the flood stops; the test reads the port's status
    assert st.startswith("connected"), f"the tab did not keep up with the flood: state {st!r}, {c}"
    result(heaps=heaps, echoes_ms=echoes, counters=c, state=st)


main(body)
