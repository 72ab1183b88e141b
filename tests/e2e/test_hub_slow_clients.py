"""`ms hub serve` under slow and half-open clients: a real `ms download` succeeds while 72 connections
trickle headers or bodies; malformed requests are answered and their connections closed; a client
trickling headers is cut off at --header-timeout (408); one address cannot hold more connections than
--max-client-connections."""
import hashlib
import os
import select
import socket
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import MsTestCase, read_to_eof, run_ms  # noqa: E402
from hubserver import HubServer  # noqa: E402

CONTENT = os.urandom(2 << 20)


class Trickler:
    """Sends one more byte on each socket every 0.2 s until stopped (or the socket fails)."""

    def __init__(self, socks, byte=b"a"):
        self.socks = list(socks)
        self.byte = byte
        self.stopped = threading.Event()
        self.failed = set()  # sockets the server closed
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopped.wait(0.2):
            for s in self.socks:
                if s in self.failed:
                    continue
                try:
                    s.send(self.byte)
                except OSError:
                    self.failed.add(s)

    def stop(self):
        self.stopped.set()
        self.thread.join()


def read_response(s):
    """One whole response on a kept-alive connection: the head, then Content-Length bytes of
    body. (One recv() may return the head alone: the body can come in a later segment.)"""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


class SlowClientsTest(MsTestCase):
    def start(self, *extra):
        self.root = self.path("root")
        self.server = HubServer(self.root, *extra)
        self.token = self.server.token("alice")
        self.server.start()
        self.addCleanup(self.server.stop)

    def connect(self):
        # The timeout is a safety net for a broken server, never what a test asserts.
        s = socket.create_connection((self.server.host, self.server.port), timeout=120)
        self.addCleanup(s.close)
        return s

    def still_open(self, s):
        """Nothing to read yet: no response, no EOF (the server holds the connection)."""
        readable, _, _ = select.select([s], [], [], 0)
        return not readable

    def test_download_succeeds_while_slow_clients_hold_connections(self):
        # Header and body deadlines far beyond the test, so the slow connections are all still
        # open when the download ends, however slow this machine is.
        self.start("--header-timeout", "3600")
        status, env = self.server.create_model(self.token, "alice", "m")
        self.assertEqual(status, 200, env)
        status, env = self.server.commit(self.token, "alice/m", lfs={"w.bin": CONTENT})
        self.assertEqual(status, 200, env)
        # 48 clients trickling a header line that never ends, 24 sending a body shorter than its
        # Content-Length a byte at a time: 72 > the 32 warm workers.
        # (Each sends as soon as it is connected: a connection silent for 5 s is closed.)
        headers, bodies = [], []
        for _ in range(48):
            headers.append(self.connect())
            headers[-1].sendall(b"GET /api/v1/models/alice/m HTTP/1.1\r\nHost: hub\r\nX-Slow: ")
        for _ in range(24):
            bodies.append(self.connect())
            bodies[-1].sendall(b"POST /api/v1/login HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
                               b"Content-Length: 900000\r\n\r\n{\"AccessToken\": \"")
        # Every slow socket is connected and has sent bytes before the download starts.
        trickle = Trickler(headers + bodies)
        self.addCleanup(trickle.stop)
        r = run_ms("download", "alice/m", "--local-dir", self.path("out"), "--max-workers", "4",
                   env={"MODELSCOPE_ENDPOINT": self.server.endpoint, "MODELSCOPE_CACHE": self.path("cache"),
                        "MODELSCOPE_API_TOKEN": self.token, "MODELSCOPE_CREDENTIALS_PATH": self.path("cred")},
                   timeout=300)
        self.assertExit(r, 0)
        with open(self.path("out", "w.bin"), "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).digest(), hashlib.sha256(CONTENT).digest())
        self.assertEqual(trickle.failed, set())
        closed = [(kind, i, s.recv(200, socket.MSG_PEEK)) for kind, group in (("header", headers), ("body", bodies))
                  for i, s in enumerate(group) if not self.still_open(s)]
        self.assertEqual(closed, [])
        trickle.stop()

    def test_malformed_requests_are_answered_and_closed(self):
        self.start()
        cases = (
            (b"GARBAGE\r\n\r\n", 400),
            (b"BREW /pot HTTP/1.1\r\nHost: hub\r\n\r\n", 400),
            (b"GET /\r\n\r\n", 400),  # HTTP/0.9
            (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: hub\r\n\r\n", 414),
            (b"GET / HTTP/1.1\r\nHost: hub\r\nX-Big: " + b"b" * 100000 + b"\r\n\r\n", 431),
            (b"GET /a\x00b HTTP/1.1\r\nHost: hub\r\n\r\n", None),
            (b"GET / HTTP/1.1\r\nHost: hub\r\nX-Nul: a\x00b\r\n\x00\r\n\r\n", None),
        )
        for raw, expected in cases:
            with self.subTest(request=raw[:30]):
                s = self.connect()
                s.sendall(raw)
                data = read_to_eof(s)  # EOF: the server closed the connection after answering
                head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
                status = int(head.split(" ", 2)[1])
                if expected is None:
                    self.assertTrue(400 <= status < 500, head)
                else:
                    self.assertEqual(status, expected, head)
                self.assertIn("connection: close", head.lower())
        # A well-formed request keeps its connection (keep-alive) as before.
        s = self.connect()
        s.sendall(b"GET /api/v1/models/alice/none HTTP/1.1\r\nHost: hub\r\n\r\n")
        self.assertTrue(read_response(s).startswith(b"HTTP/1.1 404"))
        self.assertTrue(self.still_open(s))

    def test_headers_trickled_past_the_deadline_are_cut_off(self):
        self.start("--header-timeout", "1")
        s = self.connect()
        s.sendall(b"GET /api/v1/models/alice/m HTTP/1.1\r\nHost: hub\r\nX-Slow: ")
        trickle = Trickler([s])
        self.addCleanup(trickle.stop)
        # A byte every 0.2 s never trips the per-read timeout; the header deadline ends it, with a
        # 408 that says so (it was 400 "HTTP error 400").
        data = read_to_eof(s)
        self.assertTrue(data.startswith(b"HTTP/1.1 408 "), data[:100])
        self.assertIn(b"did not arrive within --header-timeout 1 s", data)
        trickle.stop()

    def test_connections_per_client_address_are_capped(self):
        self.start("--max-client-connections", "4", "--header-timeout", "3600")
        socks = []
        for _ in range(5):
            socks.append(self.connect())
            socks[-1].sendall(b"GET /api/v1/models/alice/m HTTP/1.1\r\nHost: hub\r\n")
        # Exactly one of the five is over the cap (which one depends on thread scheduling); it is
        # answered 503 and closed at once.
        refused = []
        self.assertTrue(self.wait_for(lambda: [s for s in socks if not self.still_open(s)]))
        for s in socks:
            if not self.still_open(s):
                refused.append(read_to_eof(s))
        self.assertEqual(len(refused), 1)
        self.assertTrue(refused[0].startswith(b"HTTP/1.1 503"), refused[0][:100])
        self.assertIn(b"too many connections", refused[0])
        # Once one closes, the address may connect again.
        for s in socks:
            s.close()

        def served():
            try:
                return self.server.api("GET", "/api/v1/models/alice/none")[0] == 404
            except OSError:
                return False

        self.assertTrue(self.wait_for(served))


if __name__ == "__main__":
    unittest.main()
