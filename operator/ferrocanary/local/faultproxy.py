"""A reverse proxy on 127.0.0.1 that passes requests through or answers them badly, on a switch.

``bench faults`` points the operator at one of these instead of the real dependency: a canary's
``spec.analysis.prometheus.address`` at a proxy in front of the sandbox's Prometheus, the operator's
kubeconfig at a proxy in front of the sandbox's kube-apiserver. The proxy speaks plain HTTP to the
operator and, upstream, HTTPS with the sandbox's CA and the admin client certificate (so every
request of the operator, kopf's watches included, takes its real client path: the kubernetes client
and kopf's aiohttp session, with their retries and backoffs). Modes:

- ``pass``: forwarded, streamed back as it comes (watches stay open);
- ``down``: 503 from a server that is there but unwell (connection refused is what a stopped
  proxy gives; ``stop`` then ``start`` the same port for that);
- ``garbage``: 200 answers that are not what Prometheus says: HTML, JSON without ``data``, a
  sample that is not a number, truncated JSON, in turn;
- ``slow``: the answer is held ``slow_seconds`` before it is forwarded;
- ``huge``: a 200 JSON answer of ``huge_bytes`` (64 MiB by default), streamed;
- ``conflict``: a share ``fraction`` of writes (POST, PUT, PATCH, DELETE) get 409 Conflict, as the
  apiserver answers a write against a stale resourceVersion;
- ``throttle``: a share ``fraction`` of requests get 429 Too Many Requests with ``Retry-After: 1``,
  as API Priority and Fairness answers an overloaded apiserver.

The proxy runs its own event loop in a daemon thread of the caller; ``mode`` may be switched at any
time from the caller's thread (a plain attribute: one Python store).
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import threading
from enum import StrEnum
from typing import Any

import aiohttp
from aiohttp import web

# Headers a proxy must not forward (RFC 9110 7.6.1) plus those aiohttp sets itself.
_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
    )
)
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_GARBAGE: tuple[tuple[str, bytes], ...] = (
    ("text/html", b"<html><body>502 Bad Gateway</body></html>"),
    ("application/json", b'{"status":"success"}'),
    (
        "application/json",
        b'{"status":"success","data":{"resultType":"matrix","result":'
        b'[{"metric":{"pod":"x"},"values":[[1700000000,"not-a-number"]]}]}}',
    ),
    ("application/json", b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":'),
)


class Mode(StrEnum):
    PASS = "pass"
    DOWN = "down"
    GARBAGE = "garbage"
    SLOW = "slow"
    HUGE = "huge"
    CONFLICT = "conflict"
    THROTTLE = "throttle"


def _status(code: int, reason: str, message: str) -> web.Response:
    """A Kubernetes ``Status`` body (what the apiserver sends with a 409 or 429)."""
    body: dict[str, str | int] = {"kind": "Status", "apiVersion": "v1", "status": "Failure"}
    body |= {"message": message, "reason": reason, "code": code}
    headers = {"Retry-After": "1"} if code == 429 else {}
    return web.Response(status=code, text=json.dumps(body), content_type="application/json", headers=headers)


class FaultProxy:
    """One proxy: ``start()`` returns its URL; ``mode`` switches what it does; ``stop()``."""

    def __init__(
        self,
        upstream: str,
        port: int,
        *,
        upstream_ssl: ssl.SSLContext | None = None,
        fraction: float = 1.0,
        slow_seconds: float = 30.0,
        huge_bytes: int = 64 * 2**20,
        seed: int = 0,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.port = port
        self.mode = Mode.PASS
        self.fraction = fraction
        self.slow_seconds = slow_seconds
        self.huge_bytes = huge_bytes
        self.requests = 0  # every request received
        self.faulted = 0  # those answered with a fault instead of the upstream's answer
        self._ssl = upstream_ssl
        self._random = random.Random(seed)
        self._garbage = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> str:
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._stop())
            loop.close()

        self._thread = threading.Thread(target=serve, name=f"faultproxy-{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise RuntimeError(f"the fault proxy on port {self.port} did not start")
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
        self._loop = self._thread = None

    async def _start(self) -> None:
        connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else False, limit=256)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def _hit(self, writes_only: bool, method: str) -> bool:
        if writes_only and method not in _WRITES:
            return False
        return self._random.random() < self.fraction

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        mode = self.mode
        fault = self._fault(mode, request)
        if fault is not None:
            self.faulted += 1
            answered: web.StreamResponse = await fault
            return answered
        if mode is Mode.SLOW:
            self.faulted += 1
            await asyncio.sleep(self.slow_seconds)
        return await self._forward(request)

    def _fault(self, mode: Mode, request: web.Request) -> Any:
        """The coroutine that answers this request badly, or None to forward it."""
        if mode is Mode.DOWN:
            return self._plain(_status(503, "ServiceUnavailable", "the fault proxy says: down"))
        if mode is Mode.GARBAGE:
            kind, body = _GARBAGE[self._garbage % len(_GARBAGE)]
            self._garbage += 1
            return self._plain(web.Response(status=200, body=body, content_type=kind))
        if mode is Mode.HUGE:
            return self._huge(request)
        if mode is Mode.CONFLICT and self._hit(True, request.method):
            message = "Operation cannot be fulfilled: the object has been modified (fault proxy)"
            return self._plain(_status(409, "Conflict", message))
        if mode is Mode.THROTTLE and self._hit(False, request.method):
            return self._plain(_status(429, "TooManyRequests", "too many requests (fault proxy)"))
        return None

    @staticmethod
    async def _plain(response: web.Response) -> web.Response:
        return response

    async def _huge(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        series = b'{"metric":{"pod":"huge-0-0"},"values":[[1700000000,"1"]]},'
        chunk = series * (2**20 // len(series))
        try:
            await response.prepare(request)
            await response.write(b'{"status":"success","data":{"resultType":"matrix","result":[')
            for _ in range(self.huge_bytes // len(chunk)):
                await response.write(chunk)
            await response.write(b'{"metric":{},"values":[]}]}}')
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client gave up reading (what a bounded client should do)
        return response

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        body = await request.read()
        try:
            upstream = await self._session.request(
                request.method,
                self.upstream + request.path_qs,
                headers=headers,
                data=body or None,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                allow_redirects=False,
            )
        except (aiohttp.ClientError, OSError) as exc:
            return _status(502, "BadGateway", f"fault proxy: upstream unreachable: {exc}")
        async with upstream:
            response = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in _HOP},
            )
            try:
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except (ConnectionError, RuntimeError, aiohttp.ClientError):
                pass  # either side went away mid-stream (a watch ended, the operator was killed)
            return response
