"""What operators look at: /metrics, /healthz (live) and /readyz (ready) over HTTP."""

from __future__ import annotations

import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vigil.base.errors import ConfigError
from vigil.ops.metrics import Metrics


class Readiness:
    """Ready once every local source partition has connected and read (by then bytewax
    has restored the state from the recovery store); not ready again once it stopped."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._failed = threading.Event()

    def mark_ready(self) -> None:
        self._ready.set()

    def mark_failed(self) -> None:
        self._failed.set()

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and not self._failed.is_set()

    @property
    def live(self) -> bool:
        return not self._failed.is_set()


# A scrape takes milliseconds; a connection that has sent no request by then is closed.
IDLE_TIMEOUT = 5.0
WORKERS = 4  # threads serving connections
WAITING = 32  # connections that may wait for one; past that a new one is closed at once


class _PooledServer(HTTPServer):
    """Connections served on a fixed pool of threads, so that idle or slow clients cannot
    make the process start a thread each (a thread per connection, and no timeout, let
    200 idle sockets hold 200 threads)."""

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        # Before binding: a failed bind calls server_close.
        self.pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="vigil-status")
        self.slots = threading.BoundedSemaphore(WORKERS + WAITING)
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        with self.lock:
            self.open.add(request)
        self.pool.submit(self._serve, request, client_address)

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            with self.lock:
                self.open.discard(request)
            self.shutdown_request(request)
            self.slots.release()

    def server_close(self) -> None:
        """Also ends the connections still open, so that the pool's threads (which the
        interpreter waits for at exit) are not left waiting for their timeout."""
        super().server_close()
        self.pool.shutdown(wait=False, cancel_futures=True)
        with self.lock:
            for request in self.open:
                with suppress(OSError):
                    request.shutdown(socket.SHUT_RDWR)


class _IPv6Server(_PooledServer):
    # Bound to "::", it takes IPv4 too where the system lets it (Linux does by default).
    address_family = socket.AF_INET6


class StatusServer:
    """A small threaded HTTP server; `close()` stops it. `host` may be an IPv4 or IPv6
    address or a name (an IPv6-only Kubernetes cluster gives pods only IPv6 addresses)."""

    def __init__(self, metrics: Metrics, readiness: Readiness, host: str, port: int) -> None:
        handler = _handler(metrics, readiness)
        try:
            family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
            server = _IPv6Server if family == socket.AF_INET6 else _PooledServer
            self.server = server((host, port), handler)
        except OSError as exc:
            msg = (
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc} "
                "(set metrics.port, or 0 for no endpoint)"
            )
            raise ConfigError(msg) from exc
        bracketed = f"[{host}]" if ":" in host else host  # as a URL writes an IPv6 address
        self.address = f"{bracketed}:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="vigil-status", daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(metrics: Metrics, readiness: Readiness) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = IDLE_TIMEOUT  # on the socket: a request not sent by then ends it

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._status(readiness.live, "alive", "failed")
            elif path == "/readyz":
                self._status(readiness.ready, "ready", "not ready")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _status(self, ok: bool, yes: str, no: str) -> None:
            self._send(200 if ok else 503, f"{yes if ok else no}\n".encode(), "text/plain")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # a scrape is not a notable event

    return Handler
