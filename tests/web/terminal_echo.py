"""Dashboard -> the port's terminal -> type hello + Enter into sim:echo -> the
echo shows in the terminal's rows. On the way, the dashboard shows a TCP
client's traffic live, with no reload.

    python3 terminal_echo.py 127.0.0.1:PORT NAME
"""

from common import (By, base_url, browser, main, port_name, result, rows, state,
                    step, type_keys, wait, wait_connected)


def body():
    name = port_name()
    d = browser(1100, 700)
    d.get(base_url() + "/")
    section = wait(f"the dashboard's section for {name}",
                   lambda: d.find_element(By.CSS_SELECTOR, f'[data-port="{name}"]'), page=d)
    # The live status document has reached the page: the device is shown.
    wait("the port's device on the dashboard", lambda: "sim:echo" in section.text, page=d)
    before = section.text
    step("dashboard")  # the test has put a line through the port and a client on it
    # The live feed shows the new counts and client, with no reload.
    wait("the dashboard to show the traffic live", lambda: section.text != before, page=d)
    link = section.find_element(By.CSS_SELECTOR, f'a[href="/ports/{name}"]')
    link.click()
    wait("the terminal page", lambda: d.current_url.endswith(f"/ports/{name}"), page=d)
    wait_connected(d)
    type_keys(d, "hello", enter=True)
    # xterm echoes nothing itself: what shows came back from the device.
    text = wait("hello echoed in the terminal's rows", lambda: "hello" in rows(d) and rows(d), page=d)
    step("typed")
    result(rows=text, state=state(d))


main(body)
