"""Clients for bench/manual: `rtt PORT N` (one-byte round trips, prints
p50/p99), `read PORT SECS` (reads everything for SECS seconds) and
`flood PORT SECS` (writes as fast as it may for SECS seconds, through a
2 KiB send buffer)."""
import socket
import sys
import time

mode, port = sys.argv[1], int(sys.argv[2])
s = socket.socket()
if mode == "flood":
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2048)
s.connect(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
if mode == "rtt":
    n = int(sys.argv[3])
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        s.send(b"x")
        while not s.recv(16):
            pass
        lat.append(time.perf_counter() - t)
    lat.sort()
    print("p50 %.0f us p99 %.0f us" % (lat[n // 2] * 1e6, lat[n * 99 // 100] * 1e6))
elif mode == "flood":
    end, data = time.time() + float(sys.argv[3]), bytes(range(256)) * 16
    while time.time() < end:
        s.send(data)
else:
    end, got = time.time() + float(sys.argv[3]), 0
    while time.time() < end:
        got += len(s.recv(65536))
    print("read", got)
