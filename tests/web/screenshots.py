"""The README's two screenshots of the web console, from a real serialhub.

Starts the serialhub binary given (a debug or release build) with two
simulated ports, puts a board's boot log through one of them (sim:echo says
back what a TCP client writes) so the terminal has history, then drives
headless Chromium (Debian's chromium and chromedriver, as scripts/test
installs them; nothing is downloaded) and saves

    OUT_DIR/web-dashboard.png   the dashboard, /
    OUT_DIR/web-terminal.png    the terminal of port lab1, after typing

Usage (from the repository root):

    python3 tests/web/screenshots.py target/debug/serialhub docs/
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

os.environ["SE_OFFLINE"] = "true"  # never let selenium fetch a driver

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

BOOT_LOG = (
    "\r\nU-Boot 2024.01 (Jan 08 2024 - 10:12:41 +0000)\r\n\r\n"
    "CPU:   ARMv8 Processor rev 4\r\nDRAM:  1 GiB\r\n"
    "Hit any key to stop autoboot:  0\r\n"
    "Starting kernel ...\r\n\r\n"
    "[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd034]\r\n"
    "[    1.204312] \x1b[32mfsck\x1b[0m: /dev/mmcblk0p2: clean, 41211/950272 files\r\n"
    "[    2.871145] systemd[1]: \x1b[1mReached target Multi-User System.\x1b[0m\r\n"
    "[    3.092870] eth0: link up, 1000 Mbps, full duplex\r\n"
    "\x1b[33mwarning\x1b[0m: clock skew detected, syncing\r\n\r\n"
    "Debian GNU/Linux 12 lab1 ttyS0\r\n\r\nlab1 login: "
)

CONFIG = """
[control]
socket = "{dir}/control.sock"

[metrics]
listen = "127.0.0.1:0"

[[port]]
name = "lab1"
device = "sim:echo"
listen = ["tcp:127.0.0.1:0"]
baud = 115200
[port.log]
dir = "{dir}/log"

[[port]]
name = "bench-psu"
device = "sim:source"
listen = ["tcp:127.0.0.1:0", "rfc2217:127.0.0.1:0"]
baud = 9600
"""


def wait(what, cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = cond()
        except Exception:
            got = None
        if got:
            return got
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshots: timed out waiting for {what}")
        time.sleep(0.1)


def status(binary, workdir):
    out = subprocess.run(
        [binary, "--control", f"{workdir}/control.sock", "status", "--json"],
        capture_output=True, text=True, timeout=10,
    )
    return json.loads(out.stdout) if out.returncode == 0 else None


def browser(width, height):
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--hide-scrollbars", f"--window-size={width},{height}"]:
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)


def main():
    binary, out_dir = sys.argv[1], sys.argv[2]
    workdir = tempfile.mkdtemp(prefix="serialhub-shots-")
    os.mkdir(f"{workdir}/log")
    with open(f"{workdir}/serialhub.toml", "w") as f:
        f.write(CONFIG.format(dir=workdir))
    daemon = subprocess.Popen([binary, "serve", "--config", f"{workdir}/serialhub.toml"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    driver = None
    try:
        ports = wait("serialhub's status", lambda: status(binary, workdir))
        lab1 = next(p for p in ports if p["name"] == "lab1")
        http = lab1.get("http") or lab1.get("metrics")
        base = f"http://{http}"
        host, port = lab1["endpoints"][0].removeprefix("tcp:").rsplit(":", 1)
        # A TCP client types the boot log into sim:echo, which says it back:
        # the port's history, and a second client on the dashboard.
        client = socket.create_connection((host, int(port)))
        client.sendall(BOOT_LOG.encode())
        wait("the boot log through the device",
             lambda: next(p for p in status(binary, workdir) if p["name"] == "lab1")
             ["bytes_from_device"] >= len(BOOT_LOG.encode()))

        driver = browser(1280, 760)
        driver.get(base + "/ports/lab1")
        wait("the terminal", lambda: driver.find_element(By.ID, "state").text == "connected")
        box = driver.find_element(By.CSS_SELECTOR, "#terminal textarea.xterm-helper-textarea")
        box.send_keys("root", Keys.ENTER)
        wait("the echo", lambda: "root" in driver.find_element(By.CSS_SELECTOR, ".xterm-rows").text)
        terminal = driver.current_window_handle

        driver.switch_to.new_window("tab")
        driver.get(base + "/")
        wait("both ports on the dashboard",
             lambda: len(driver.find_elements(By.CSS_SELECTOR, "section.port[data-port]")) == 2
             and "web:" in driver.find_element(By.CSS_SELECTOR, 'section.port[data-port="lab1"]').text)
        time.sleep(1.5)  # let sim:source's counters move on screen
        # The window as tall as the ports, without empty page below.
        chrome = driver.execute_script("return window.outerHeight - window.innerHeight")
        bottom = driver.execute_script(
            "return document.getElementById('ports').getBoundingClientRect().bottom")
        driver.set_window_size(1280, int(bottom) + chrome + 24)
        time.sleep(0.5)
        driver.save_screenshot(os.path.join(out_dir, "web-dashboard.png"))

        driver.set_window_size(1280, 760)
        driver.switch_to.window(terminal)
        time.sleep(1.0)  # the terminal refits to the window
        driver.save_screenshot(os.path.join(out_dir, "web-terminal.png"))
        client.close()
        print(f"screenshots: saved {out_dir}/web-dashboard.png and web-terminal.png")
    finally:
        if driver is not None:
            driver.quit()
        daemon.terminate()
        daemon.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
