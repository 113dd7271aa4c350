"""Runs submitted on the agent's own host reach it through a Unix socket, so that
``python run.py … site=NAME`` neither imports MLflow nor waits for the next poll: the agent
records the run (SCHEDULED, as any queued run), claims it like any other and, with
``site.wait=true``, answers again when it ended.

One request per connection, JSON lines: the client sends
``{"out_dir": …, "wait": bool, "submitter": {…}}`` (the composed config is in
``<out_dir>/.hydra/resolved.yaml``); the agent answers ``{"run_id": …}`` or
``{"error": …}``, then with ``wait`` ``{"status": …, "code": int, "text": …}``.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: A submission: the request → the run id; then, if it waits, the final reply.
Handler = Callable[[dict[str, Any]], tuple[str, Callable[[], dict[str, Any]] | None]]


def send(path: Path, request: dict[str, Any], timeout: float | None) -> Iterator[dict[str, Any]]:
    """Send one request to the agent's socket; yield its replies.

    Raises
    ------
    OSError
        No agent listens there (connection refused, no such file).
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5.0)
        sock.connect(str(path))
        sock.sendall(json.dumps(request).encode() + b"\n")
        sock.settimeout(timeout)
        with sock.makefile("rb") as replies:
            for line in replies:
                yield dict(json.loads(line))


class Inbox(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The agent's socket server; ``handler`` turns a request into a run."""

    daemon_threads = True

    def __init__(self, path: Path, handler: Handler) -> None:
        path.unlink(missing_ok=True)
        self.handler = handler
        super().__init__(str(path), Request)
        path.chmod(0o600)       # only this user submits through it
        self.thread = threading.Thread(target=self.serve_forever, args=(0.2,),
                                       name="inbox", daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving and remove the socket file."""
        self.shutdown()
        self.server_close()
        Path(str(self.server_address)).unlink(missing_ok=True)


class Request(socketserver.StreamRequestHandler):
    """One submission."""

    server: Inbox

    def reply(self, message: dict[str, Any]) -> None:
        self.wfile.write(json.dumps(message).encode() + b"\n")
        self.wfile.flush()

    def handle(self) -> None:
        try:
            request = json.loads(self.rfile.readline())
            run_id, result = self.server.handler(request)
        except Exception as exc:    # noqa: BLE001 - the submitter prints it
            self.reply({"error": f"{type(exc).__name__}: {exc}"})
            return
        self.reply({"run_id": run_id})
        if result is not None:
            self.reply(result())
