"""Two tabs on a flooding port; one is frozen (Page.setWebLifecycleState
frozen: its scripts stop, so it stops acking). The server stops sending it
past its window, its client queue fills, and the port's slow-reader policy
acts (the Rust test sees the kick or the drops in `status`); the other tab
keeps receiving all along. Thawed, the frozen tab shows what happened.

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
    shown = wait("the thawed tab to show it was cut or lost bytes",
                 lambda: (not state(d).startswith("connected") and state(d))
                 or ((counters(d) or {}).get("dropped") and f"dropped {counters(d)['dropped']}"),
                 timeout=40, page=d)
    reconnect = [e.is_displayed() for e in d.find_elements(By.ID, "reconnect")]
    result(live_received=after["received"] - before, seconds=took, frozen_shows=shown,
           reconnect_shown=any(reconnect))


main(body)
