"""The textscore HTTP service (one module, both builds): routes, responses, timing, main().

A threaded stdlib HTTP/1.1 server (keep-alive, one thread per connection): no framework to
install, and the Rust build's threads score in parallel because the extension releases the GIL.

Routes: POST /v1/score (the API), GET /metrics (Prometheus), GET /healthz (probes), and
GET /debug/hotpath (cumulative CPU seconds spent in the hot path vs the whole request, which the
benchmark reads to say what share of a request the hot path is). Every response carries
``X-Build: python|rust``. Monitoring routes are not counted in the request metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

from textscore import api, engine, faults, spec
from textscore import metrics as metrics_mod

SCORE = "/v1/score"
MONITORING = ("/metrics", "/healthz", "/debug/hotpath")


class HotPathClock:
    """Cumulative thread-CPU seconds: whole requests vs the hot path inside them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.request_cpu = 0.0
        self.hot_path_cpu = 0.0

    def add(self, request_cpu: float, hot_path_cpu: float) -> None:
        with self._lock:
            self.requests += 1
            self.request_cpu += request_cpu
            self.hot_path_cpu += hot_path_cpu

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {
                "requests": self.requests,
                "request_cpu_seconds": self.request_cpu,
                "hot_path_cpu_seconds": self.hot_path_cpu,
            }


class App:
    """What the handler threads share: the engine, the metrics, the clock."""

    def __init__(self, eng: engine.Engine) -> None:
        self.engine = eng
        self.metrics = metrics_mod.Metrics(eng.build, eng.version, eng.native)
        for code in ("200", "500"):
            self.metrics.requests.labels(route=SCORE, code=code)
        self.metrics.latency.labels(route=SCORE)
        self.clock = HotPathClock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "textscore"
    # Headers and body leave in one write, and small responses must not wait for delayed ACKs.
    disable_nagle_algorithm = True
    app: App  # set on the subclass made by make_server

    _started = 0.0
    _started_cpu = 0.0
    path = ""

    def parse_request(self) -> bool:
        # Timing starts once the request line is in: header parsing is part of a request's cost.
        self._started = time.perf_counter()
        self._started_cpu = time.thread_time()
        self.path = ""
        return super().parse_request()

    def log_message(self, format: str, *args: object) -> None:
        pass  # one line per request would cost more than the Rust build's hot path

    def _route(self) -> str:
        path = self.path.split("?", 1)[0]
        return path if path in (SCORE, *MONITORING) else "unmatched"

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"X-Build: {self.app.engine.build}\r\n"
            + ("Connection: close\r\n" if self.close_connection else "")
            + "\r\n"
        )
        self.wfile.write(head.encode("latin-1") + body)

    def _finish(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self._send(status, body, content_type)
        route = self._route()
        if route not in MONITORING:
            self.app.metrics.observe(route, status, time.perf_counter() - self._started)
        self._started = 0.0
        self.path = ""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Protocol-level errors (bad request line, unsupported method) get the same JSON shape.
        self.close_connection = True
        if not self._started:
            self._started = time.perf_counter()
        phrase = HTTPStatus(code).phrase
        error = api.ApiError(code, phrase.lower().replace(" ", "_"), message or phrase)
        self._finish(code, error.body())

    def do_GET(self) -> None:
        route = self._route()
        if route == "/metrics":
            self._finish(200, self.app.metrics.exposition(), "text/plain; version=0.0.4; charset=utf-8")
        elif route == "/healthz":
            self._finish(200, json.dumps({"status": "ok", "build": self.app.engine.build}).encode())
        elif route == "/debug/hotpath":
            self._finish(
                200, json.dumps({"build": self.app.engine.build, **self.app.clock.snapshot()}).encode()
            )
        elif route == SCORE:
            self._finish(405, api.ApiError(405, "method_not_allowed", "use POST /v1/score").body())
        else:
            self._finish(404, api.ApiError(404, "not_found", f"no route {self.path!r}").body())

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            raise api.ApiError(411, "length_required", "send the body with a Content-Length, not chunked")
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise api.ApiError(411, "length_required", "a Content-Length header is required")
        try:
            length = int(raw)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise api.ApiError(400, "bad_request", f"Content-Length {raw!r} is not a byte count")
        if length > spec.MAX_BODY_BYTES:
            # The unread body would be taken for the next request: close after answering.
            self.close_connection = True
            raise api.ApiError(
                413, "body_too_large", f"the body has {length} bytes: the limit is {spec.MAX_BODY_BYTES}"
            )
        body = self.rfile.read(length)
        if len(body) != length:
            self.close_connection = True
            raise api.ApiError(400, "bad_request", "the connection closed before the whole body arrived")
        return body

    def do_POST(self) -> None:
        if self._route() != SCORE:
            status = 404 if self._route() == "unmatched" else 405
            self.close_connection = True  # the body, if any, is not read
            self._finish(
                status,
                api.ApiError(
                    status,
                    "not_found" if status == 404 else "method_not_allowed",
                    f"no POST route {self.path!r}",
                ).body(),
            )
            return
        try:
            texts = api.parse_score_request(self._read_body())
            hot_started = time.thread_time()
            scores = self.app.engine.score_batch(texts)
            hot_path_cpu = time.thread_time() - hot_started
            self._finish(200, api.score_response(scores))
        except api.ApiError as exc:
            self._finish(exc.status, exc.body())
            return
        except engine.HotPathPanicError:
            self.app.metrics.panics.inc()
            self._finish(
                500, api.ApiError(500, "internal", "the scorer failed (a Rust panic, caught)").body()
            )
            return
        except Exception:
            traceback.print_exc()
            self.close_connection = True
            self._finish(500, api.ApiError(500, "internal", "internal error").body())
            return
        self.app.clock.add(time.thread_time() - self._started_cpu, hot_path_cpu)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def make_server(host: str, port: int, eng: engine.Engine) -> Server:
    handler = type("BoundHandler", (Handler,), {"app": App(eng)})
    return Server((host, port), handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="textscore", description="The textscore scoring service.")
    parser.add_argument("--build", choices=engine.BUILDS, default=os.environ.get("TEXTSCORE_BUILD", "python"))
    parser.add_argument("--host", default=os.environ.get("TEXTSCORE_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("TEXTSCORE_PORT", "8080")))
    args = parser.parse_args(argv)
    try:
        fault = faults.from_env()
        eng = engine.load(args.build)
        faults.apply(fault, args.build)
    except (faults.FaultConfigError, ImportError) as exc:
        print(f"textscore: {exc}", file=sys.stderr)
        return 2
    server = make_server(args.host, args.port, eng)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    print(
        f"textscore listening on http://{host}:{port} build={eng.build} native={eng.native} "
        f"fault={fault.describe()}",
        flush=True,
    )
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
