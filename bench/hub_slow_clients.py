#!/usr/bin/env python3
"""Times `ms download` of one 64 MiB file from `ms hub serve` while N other connections trickle
request headers (2/3 of them) or a body shorter than its Content-Length (1/3), and the time from
sending a malformed request to the server closing the connection.

    python3 bench/hub_slow_clients.py BUILD/bin/ms [N ...]   (default N: 0 64 200)

A download that does not finish within --limit seconds (default 60) is reported as such."""
import argparse
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ms")
    ap.add_argument("counts", nargs="*", type=int, default=[0, 64, 200])
    ap.add_argument("--limit", type=float, default=60)
    args = ap.parse_args()
    os.environ["MS_BIN"] = os.path.abspath(args.ms)
    from hubserver import HubServer  # noqa: E402 (reads MS_BIN)

    tmp = tempfile.mkdtemp(prefix="ms-bench-slow-")
    server = HubServer(os.path.join(tmp, "root"))
    token = server.token("alice")
    server.start()
    try:
        server.create_model(token, "alice", "m")
        data = os.urandom(64 << 20)
        status, env = server.commit(token, "alice/m", lfs={"w.bin": data})
        assert status == 200, env
        for n in args.counts:
            socks = []
            for i in range(n):
                s = socket.create_connection((server.host, server.port))
                if i % 3 == 2:
                    s.sendall(b"POST /api/v1/login HTTP/1.1\r\nHost: h\r\nContent-Length: 900000\r\n\r\n{")
                else:
                    s.sendall(b"GET /api/v1/models/alice/m HTTP/1.1\r\nHost: h\r\nX-Slow: ")
                socks.append(s)
            stop = threading.Event()

            def trickle():
                while not stop.wait(0.5):
                    for s in socks:
                        try:
                            s.send(b"a")
                        except OSError:
                            pass

            t = threading.Thread(target=trickle, daemon=True)
            t.start()
            out = os.path.join(tmp, f"out{n}")
            start = time.time()
            try:
                r = subprocess.run([args.ms, "download", "alice/m", "--local-dir", out],
                                   env={**os.environ, "MODELSCOPE_ENDPOINT": server.endpoint,
                                        "MODELSCOPE_CACHE": os.path.join(tmp, "cache"),
                                        "MODELSCOPE_API_TOKEN": token, "MS_NO_PROGRESS": "1"},
                                   capture_output=True, timeout=args.limit)
                took = time.time() - start
                ok = r.returncode == 0 and hashlib.sha256(open(os.path.join(out, "w.bin"), "rb").read()).digest() \
                    == hashlib.sha256(data).digest()
                print(f"{n:4d} slow connections: download {'ok' if ok else 'FAILED'} in {took:.2f} s")
            except subprocess.TimeoutExpired:
                print(f"{n:4d} slow connections: download did not finish in {args.limit:.0f} s")
            stop.set()
            t.join()
            for s in socks:
                s.close()
        for name, raw in (("bad request line", b"GARBAGE\r\n\r\n"),
                          ("414 URI", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: h\r\n\r\n"),
                          ("100 KB header", b"GET / HTTP/1.1\r\nX: " + b"b" * 100000 + b"\r\n\r\n"),
                          ("unknown method", b"BREW / HTTP/1.1\r\nHost: h\r\n\r\n"),
                          ("HTTP/0.9", b"GET /\r\n\r\n"),
                          ("NUL in a header", b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n")):
            s = socket.create_connection((server.host, server.port), timeout=30)
            start = time.time()
            s.sendall(raw)
            got = b""
            first = None
            try:
                while True:
                    chunk = s.recv(65536)
                    if first is None:
                        first = time.time() - start
                    if not chunk:
                        break
                    got += chunk
                status = got.split(b" ", 2)[1].decode() if got else "none"
                print(f"{name}: HTTP {status}, response {first:.3f} s, EOF {time.time() - start:.3f} s")
            except OSError as e:
                print(f"{name}: {e!r} after {time.time() - start:.3f} s")
            s.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
