"""Two tabs on one port, on a listener with password users: the login form
refuses a wrong password and takes the right one; both tabs show a line the
device sends; the read-only tab's typing never reaches the device and the
read-write tab's does; a WebSocket upgrade from a foreign Origin is refused.
The two tabs are two browsers, so that each has its own login.

    python3 two_tabs.py 127.0.0.1:PORT NAME RW_USER:PASSWORD RO_USER:PASSWORD
"""

import sys

from common import (By, base_url, browser, main, port_name, result, rows, step,
                    type_keys, wait, wait_connected, ws_upgrade)


def log_in(d, user, password, next_path):
    d.get(f"{base_url()}{next_path}")
    # No session: the page sends the browser to the login form.
    wait("the login form", lambda: d.find_elements(By.ID, "login"), page=d)
    assert "/login" in d.current_url, d.current_url
    form = d.find_element(By.ID, "login")
    form.find_element(By.NAME, "username").send_keys(user)
    form.find_element(By.NAME, "password").send_keys(password)
    form.submit()


def body():
    name = port_name()
    rw_user, rw_pass = sys.argv[3].split(":", 1)
    ro_user, ro_pass = sys.argv[4].split(":", 1)
    page = f"/ports/{name}"

    rw = browser()
    log_in(rw, rw_user, rw_pass + "-wrong", page)
    error = wait("the login error", lambda: rw.find_element(By.ID, "error").text, page=rw)
    assert "wrong user name or password" in error, error
    assert rw.get_cookie("serialhub_session") is None, "a session after a wrong password"
    # The right password, from the form the refusal showed.
    form = rw.find_element(By.ID, "login")
    for field, value in [("username", rw_user), ("password", rw_pass)]:
        box = form.find_element(By.NAME, field)
        box.clear()
        box.send_keys(value)
    form.submit()
    wait("the terminal page after the login", lambda: rw.current_url.endswith(page), page=rw)
    wait_connected(rw)
    cookie = rw.get_cookie("serialhub_session")
    assert cookie and cookie.get("httpOnly") and cookie.get("sameSite") == "Strict", cookie
    wait("role rw", lambda: "rw" in rw.find_element(By.ID, "role").text, page=rw)

    ro = browser()
    log_in(ro, ro_user, ro_pass, page)
    wait("the read-only tab's terminal page", lambda: ro.current_url.endswith(page), page=ro)
    wait_connected(ro)
    wait("role ro", lambda: "ro" in ro.find_element(By.ID, "role").text, page=ro)

    step("both")  # the device says a line
    for d in (rw, ro):
        wait("the device's line in both tabs", lambda: "line-from-the-device" in rows(d), page=d)

    type_keys(ro, "ro-typed-keys", enter=True)
    step("ro-typed")  # the test sees the keys counted as discarded
    type_keys(rw, "rw-typed-keys", enter=True)
    step("rw-typed")  # the test sees them reach the device

    # A WebSocket upgrade with the session cookie: refused from a foreign
    # Origin, without an Origin, and without the cookie; taken from its own.
    host = sys.argv[1]
    jar = f"serialhub_session={cookie['value']}"
    ws = f"/ws/ports/{name}"
    upgrades = {
        "foreign": ws_upgrade(host, ws, origin="http://evil.example", cookie=jar),
        "none": ws_upgrade(host, ws, origin=None, cookie=jar),
        "no_cookie": ws_upgrade(host, ws, origin=base_url()),
        "own": ws_upgrade(host, ws, origin=base_url(), cookie=jar),
    }
    assert " 403 " in upgrades["foreign"] + " ", upgrades
    assert " 403 " in upgrades["none"] + " ", upgrades
    assert " 401 " in upgrades["no_cookie"] + " ", upgrades
    assert " 101 " in upgrades["own"] + " ", upgrades
    result(upgrades=upgrades, error=error)


main(body)
