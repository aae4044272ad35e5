"""Two tabs on a flooding port; one is frozen (Page.setWebLifecycleState
frozen: its scripts stop, so it stops acking). The server stops sending it
past its window, its client queue fills, and the port's slow-reader policy
acts (the Rust test sees the kick in `status`); the other tab keeps
receiving all along. Thawed, the frozen tab reconnects by itself (or shows
that it was closed).

    python3 frozen.py 127.0.0.1:PORT NAME
"""

import time

from common import (By, browser, counters, main, open_terminal, port_name,
                    result, state, step, wait)


def body():
    name = port_name()
    d = browser()
    open_terminal(d, name)
    frozen = d.current_window_handle
    d.switch_to.new_window("window")
    open_terminal(d, name)
    live = d.current_window_handle
    step("open")  # the test sees two web clients and starts the flood

    d.switch_to.window(frozen)
    d.execute_cdp_cmd("Page.setWebLifecycleState", {"state": "frozen"})
    d.switch_to.window(live)
    before = counters(d)["received"]
    t0 = time.monotonic()
    step("frozen")  # the test waits for the slow-reader policy to act
    took = time.monotonic() - t0
    after = counters(d)
    st = state(d)
    assert st.startswith("connected"), f"the live tab was cut: {st!r} {after}"
    assert after["dropped"] == 0, f"the live tab lost bytes: {after}"
    # It kept receiving: at least a third of the line rate over the wait.
    assert after["received"] - before >= took * 11520 / 3, (before, after, took)

    d.switch_to.window(frozen)
    d.execute_cdp_cmd("Page.setWebLifecycleState", {"state": "active"})
    # Thawed, it finds its connection gone. The server's `closed` message
    # sat behind the window it never read, so to the page this is a blip:
    # it comes back by itself from its offset, the bytes the port no longer
    # held counted as lost. (Had the message come through: closed, with the
    # Reconnect button.)
    seen = wait("the thawed tab to reconnect by itself, or to show it was closed",
                lambda: (state(d).startswith("closed") and state(d))
                or (state(d).startswith("connected") and thawed(d)["connections"] >= 2 and "reconnected"),
                timeout=40, page=d)
    if seen.startswith("closed"):
        assert any(e.is_displayed() for e in d.find_elements(By.ID, "reconnect")), "no Reconnect button"
    result(live_received=after["received"] - before, seconds=took, thawed=seen, frozen_tab=thawed(d))


def thawed(d):
    return d.execute_script(
        "const s = window.serialhub;"
        "return {connections: s.connections, dropped: s.dropped, offset: s.offset, gap: s.gap};"
    )

main(body)
