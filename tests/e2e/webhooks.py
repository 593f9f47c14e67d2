"""A webhook receiver for the hand-off tests, and the server settings that point at it."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET = "webhook-signing-secret"


class Receiver:
    """A webhook receiver that fails its first ``failures`` calls, checks signatures and
    counts deliveries per upload."""

    def __init__(self, port: int, failures: int = 0) -> None:
        self.port = port
        self.failures = failures
        self.calls = 0
        self.delivered: Counter[str] = Counter()
        self.bad_signatures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                if self.headers.get("X-Chunkd-Signature") != f"sha256={expected}":
                    receiver.bad_signatures += 1
                receiver.calls += 1
                message: dict[str, Any] = json.loads(body)
                if receiver.calls <= receiver.failures:
                    self.send_response(503)
                    self.end_headers()
                    return
                if message["hook"] == "post-finish":
                    receiver.delivered[message["delivery"]] += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def hook_env(port: int) -> dict[str, str]:
    return {
        "CHUNKD_HOOKS": f"http://127.0.0.1:{port}/hook",
        "CHUNKD_HOOK_EVENTS": "post-finish",
        "CHUNKD_HOOK_SECRET": SECRET,
        "CHUNKD_HOOK_RETRY_BASE": "0.2s",
    }
