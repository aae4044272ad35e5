"""Closing a terminal's tab, and killing the browser, frees its client slot:
the Rust test watches `status` between the steps (within 10 s each).

    python3 slot.py 127.0.0.1:PORT NAME
"""

import os
import signal

from common import _drivers, base_url, browser, main, open_terminal, port_name, result, step


def descendants(pid):
    """The processes under `pid`, from /proc (children before their own)."""
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def body():
    name = port_name()
    d = browser()
    d.get(base_url() + "/")
    home = d.current_window_handle
    d.switch_to.new_window("tab")
    open_terminal(d, name)
    step("opened")  # the test sees the web client
    d.close()
    d.switch_to.window(home)
    step("tab-closed")  # the test sees the slot freed
    open_terminal(d, name)
    step("opened")
    # The whole browser dies as in a crash: SIGKILL to every Chromium process
    # this script's chromedriver started (the driver itself stays).
    chromium = descendants(d.service.process.pid)
    assert chromium, "no Chromium process under chromedriver"
    for pid in chromium:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _drivers.remove(d)
    d.service.stop()
    step("killed")  # the test sees the slot freed
    result(killed=len(chromium))


main(body)
