"""The textscore HTTP service (one module, both builds): routes, error mapping, metrics, main().

aiohttp on one event loop, scoring inline by default in both builds, so the hot path is the
only difference between them. Inline is the right default for the Python build: its hot path
holds the GIL, so threads would only queue on it (and a thread per connection, as the stdlib
server does, makes every socket call wait behind a 5 ms GIL slice: p99 near a second at 70%
load). The Rust extension releases the GIL, so TEXTSCORE_HOT_PATH_THREADS=N scores on N threads
in parallel with the loop when a pod has cores to spare.

Routes: POST /v1/score (the API), GET /metrics (Prometheus), GET /healthz (probes), and
GET /debug/hotpath (cumulative CPU seconds in the hot path and in the whole process, which the
benchmark reads to say what share of a request the hot path is). Every response carries
``X-Build: python|rust``; monitoring routes are not counted in the request metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable

from aiohttp import web

from textscore import api, engine, faults, spec
from textscore import metrics as metrics_mod

SCORE = "/v1/score"
MONITORING = ("/metrics", "/healthz", "/debug/hotpath")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HotPathClock:
    """Cumulative CPU seconds spent in the hot path (thread CPU time around each call)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self.cpu = 0.0

    def timed(self, score: Callable[[list[str]], list[float]], texts: list[str]) -> list[float]:
        started = time.thread_time()
        try:
            return score(texts)
        finally:
            spent = time.thread_time() - started
            with self._lock:
                self.calls += 1
                self.cpu += spent

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return {"hot_path_calls": self.calls, "hot_path_cpu_seconds": self.cpu}


def _json(status: int, doc: object) -> web.Response:
    return web.Response(status=status, body=json.dumps(doc).encode(), content_type="application/json")


def _error(exc: api.ApiError) -> web.Response:
    return web.Response(status=exc.status, body=exc.body(), content_type="application/json")


def _route(request: web.Request) -> str:
    return request.path if request.path in (SCORE, *MONITORING) else "unmatched"


class Service:
    """The handlers and what they share: the engine, the metrics, the hot-path clock."""

    def __init__(self, eng: engine.Engine, hot_path_threads: int) -> None:
        self.engine = eng
        self.metrics = metrics_mod.Metrics(eng.build, eng.version, eng.native)
        for code in ("200", "500"):
            self.metrics.requests.labels(route=SCORE, code=code)
        self.metrics.latency.labels(route=SCORE)
        self.clock = HotPathClock()
        self.pool = (
            concurrent.futures.ThreadPoolExecutor(hot_path_threads, thread_name_prefix="hotpath")
            if hot_path_threads > 0
            else None
        )

    @web.middleware
    async def observe(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except api.ApiError as exc:
            response = _error(exc)
        except web.HTTPException as exc:  # the router's 404 and 405
            words = exc.reason.lower().replace(" ", "_")
            response = _error(
                api.ApiError(exc.status, words, f"{exc.reason}: {request.method} {request.path}")
            )
        except engine.HotPathPanicError:
            self.metrics.panics.inc()
            response = _error(api.ApiError(500, "internal", "the scorer failed (a Rust panic, caught)"))
        except Exception:
            traceback.print_exc()
            response = _error(api.ApiError(500, "internal", "internal error"))
        response.headers["X-Build"] = self.engine.build
        route = _route(request)
        if route not in MONITORING:
            self.metrics.observe(route, response.status, time.perf_counter() - started)
        return response

    async def score(self, request: web.Request) -> web.StreamResponse:
        length = request.content_length
        if length is not None and length > spec.MAX_BODY_BYTES:
            raise api.ApiError(
                413, "body_too_large", f"the body has {length} bytes: the limit is {spec.MAX_BODY_BYTES}"
            )
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise api.ApiError(
                413, "body_too_large", f"the body exceeds the limit of {spec.MAX_BODY_BYTES} bytes"
            ) from None
        texts = api.parse_score_request(body)
        if self.pool is None:
            scores = self.clock.timed(self.engine.score_batch, texts)
        else:
            loop = asyncio.get_running_loop()
            scores = await loop.run_in_executor(self.pool, self.clock.timed, self.engine.score_batch, texts)
        return web.Response(body=api.score_response(scores), content_type="application/json")

    async def metrics_page(self, request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=self.metrics.exposition(),
            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
        )

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        return _json(200, {"status": "ok", "build": self.engine.build})

    async def hotpath(self, request: web.Request) -> web.StreamResponse:
        doc = {
            "build": self.engine.build,
            "process_cpu_seconds": time.process_time(),
            **self.clock.snapshot(),
        }
        return _json(200, doc)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self.observe], client_max_size=spec.MAX_BODY_BYTES)
        app.router.add_post(SCORE, self.score)
        app.router.add_get("/metrics", self.metrics_page)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/debug/hotpath", self.hotpath)
        return app


async def serve(service: Service, host: str, port: int, fault: faults.FaultConfig) -> None:
    runner = web.AppRunner(service.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=512)
    await site.start()
    bound = next(iter(runner.addresses))
    print(
        f"textscore listening on http://{bound[0]}:{bound[1]} build={service.engine.build} "
        f"native={service.engine.native} fault={fault.describe()}",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        if service.pool is not None:
            service.pool.shutdown(wait=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="textscore", description="The textscore scoring service.")
    parser.add_argument("--build", choices=engine.BUILDS, default=os.environ.get("TEXTSCORE_BUILD", "python"))
    parser.add_argument("--host", default=os.environ.get("TEXTSCORE_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("TEXTSCORE_PORT", "8080")))
    parser.add_argument(
        "--hot-path-threads",
        type=int,
        default=int(os.environ.get("TEXTSCORE_HOT_PATH_THREADS") or 0),
        help="threads scoring off the event loop (default 0: inline). Only the rust build gains from"
        " threads (its hot path releases the GIL), and only with spare cores: the hand-off costs"
        " about as much CPU as the Rust hot path itself",
    )
    args = parser.parse_args(argv)
    try:
        fault = faults.from_env()
        eng = engine.load(args.build)
        faults.apply(fault, args.build)
    except (faults.FaultConfigError, ImportError) as exc:
        print(f"textscore: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(Service(eng, args.hot_path_threads), args.host, args.port, fault))
    return 0


if __name__ == "__main__":
    sys.exit(main())
