"""Builds one mockhub (journal, rules, fakes, API) and serves it: HTTP and SMTP in one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Coroutine
from types import FrameType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson
import uvicorn
from starlette.types import Receive, Scope, Send

from mockhub import __version__
from mockhub.api_body import limited_body
from mockhub.journal import Journal
from mockhub.outbound import own_listener_refusal
from mockhub.pipeline import HttpPipeline
from mockhub.proxy import PROXY_KEY, Intercepted, TlsFront, target_of
from mockhub.recording import RecordingError, attach
from mockhub.router import Router
from mockhub.rules import RuleBook
from mockhub.services import SERVICES, FakesError, load_fake
from mockhub.services.base import ServiceContext
from mockhub.services.limits import ParseLimits
from mockhub.settings import Settings
from mockhub.store import StoreError, StoreUnavailable, open_store
from mockhub.tls import Authority, local_names
from mockhub.transport import MockhubProtocol
from mockhub.usage import PriceError, Prices
from mockhub.webhooks_config import WebhookBook, parse_setting

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mockhub.simulate import Simulator

__all__ = ["Hub", "MockhubServer", "bind_socket", "run"]

log = logging.getLogger("mockhub")

_NOT_FOUND = b'{"error":{"code":"not_found","message":"no fake at this path"}}'
_UNAUTHORIZED = (
    b'{"error":{"code":"unauthorized","message":"this mockhub requires its admin token: '
    b'Authorization: Bearer <token>, X-Mockhub-Token: <token> or ?token=<token>"}}'
)
_CROSS_ORIGIN = (
    b'{"error":{"code":"cross_origin","message":"the inspection API refuses changes sent by a web page of '
    b'another origin (the Origin header names a different host)"}}'
)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Container healthchecks and orchestrators probe these without credentials.
_OPEN_PATHS = frozenset({"/health", "/livez", "/readyz"})


class Hub:
    """One mockhub: the journal, the rule book, the fakes, and the ASGI app in front of them."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.journal = Journal(self.settings.max_calls, self.settings.max_journal_bytes)
        self.rules = RuleBook(self.settings.seed, self.settings.max_rules)
        # Memory (the default) or a store shared by several processes (redis://...): docs/store.md.
        self.store = open_store(self.settings.store, self.journal, self.rules)
        self._tasks: set[asyncio.Task[None]] = set()
        # One CA for every TLS listener and proxy tunnel; it is made when first needed.
        extra_names = (self.settings.host,) if self.settings.host not in ("0.0.0.0", "::", "") else ()
        self.authority = Authority(local_names(self.settings.smtp_hostname, extra_names))
        extra = [load_fake(s) for s in (self.settings.fakes or "").split(",") if s.strip()]
        # A fake of the user's own comes first, so its routes win over a built-in fake's broader ones.
        classes = [*extra, *SERVICES]
        self.webhooks = WebhookBook({cls.name: cls.events for cls in classes if cls.events})
        for spec in parse_setting(self.settings.webhooks) if self.settings.webhooks else []:
            problem = self.webhooks.problem(spec)
            if problem is not None:
                raise FakesError(f"webhooks: {problem}")
            self.webhooks.add(spec, source="settings")
        ctx = ServiceContext(
            self.settings,
            self.journal,
            self.rules,
            self.spawn,
            self.authority,
            webhooks=self.webhooks,
            store=self.store,
        )
        self.services = [cls(ctx) for cls in classes]
        names = [s.name for s in self.services]
        if len(set(names)) != len(names):
            raise FakesError(f"fakes: two fakes share a name: {sorted(n for n in names if names.count(n) > 1)}")
        self.router = Router(self.services)
        for service in self.services:
            self.rules.limits.register(service.name, service.limit_facts())
        self.store.on_reset = self._reset_services
        ctx.own_target = self._own_target
        self.ctx = ctx
        # `POST /simulate/...` (mockhub.simulate), made with the inspection API: it needs FastAPI.
        self._simulator: Simulator | None = None
        # Stub files, replay and the JSONL sink; a bad file fails here, naming the file and entry.
        # Each fake's own stub reply fields: stub files (here) and POST /stubs are checked against them.
        self.stub_replies = {s.name: s.stub_reply for s in self.services}
        self.replay_skipped: list[str] = []
        self.recording = attach(self.settings, self.journal, self.rules, self.stub_replies, self.replay_skipped)
        # GET /usage: each fake's prices and reader of billed calls; a bad price file fails here.
        self.prices = Prices({s.name: s.prices for s in self.services}, self.settings.llm_prices)
        self.pipeline = HttpPipeline(
            self.journal,
            self.rules,
            self.settings.max_body_bytes,
            self.spawn,
            self.settings.body_timeout,
            self.store,
            limits=ParseLimits(self.settings.max_parts, self.settings.max_mime_depth, self.settings.max_part_headers),
            thread_bytes=self.settings.parse_thread_bytes,
        )
        self._api: FastAPI | None = None
        self._api_lock = threading.Lock()
        self._api_building: asyncio.Future[FastAPI] | None = None
        self.http_port = 0
        self.https_port: int | None = None
        self.ready = False
        # The open HTTP connections (the server's own set, once `MockhubServer` serves this hub).
        self.connections: set[Any] = set()
        self.startup_error: str | None = None
        # Printable ASCII (Settings checks it), so its bytes are the same in every encoding.
        self._token = None if self.settings.admin_token is None else self.settings.admin_token.encode("ascii")

    def _authorized(self, scope: Scope) -> bool:
        """The admin token, from a header (clients) or the query string (the UI's EventSource cannot set headers).

        Compared as bytes: whatever a client sends (non-ASCII included) is a wrong token, never an error.
        """
        token = self._token
        assert token is not None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, given = bytes(value).partition(b" ")
                if scheme == b"Bearer" and hmac.compare_digest(given, token):
                    return True
            elif name == b"x-mockhub-token" and hmac.compare_digest(bytes(value), token):
                return True
        # latin-1 both ways: each percent-decoded byte stays that byte, whatever it is.
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"), encoding="latin-1")
        return any(hmac.compare_digest(given.encode("latin-1"), token) for given in query.get("token", []))

    @property
    def api(self) -> FastAPI:
        """The inspection API (FastAPI), built on first use.

        Importing FastAPI and building its routes is a third of start-up, and only the inspection
        API needs it: `startup` begins building it in a worker thread once the listeners are up, so
        the fakes (and /health) answer meanwhile; an inspection request arriving before it is built
        waits for it.
        """
        with self._api_lock:
            if self._api is None:
                from mockhub.api import ApiState, create_api
                from mockhub.simulate import Simulator, simulate_router
                from mockhub.tls import tls_router
                from mockhub.ui import ui_router

                state = ApiState(
                    self.journal,
                    self.rules,
                    self.health,
                    services={s.name: s.info() for s in self.services},
                    attachments={s.name: s.attachment for s in self.services},
                    stub_replies=self.stub_replies,
                    on_reset=self._reset_services,
                    limits=self.pipeline.limits,
                    parse_thread_bytes=self.settings.parse_thread_bytes,
                    usage_readers={s.name: s.usage for s in self.services},
                    prices=self.prices,
                    store=self.store,
                )
                api = create_api(state, __version__)
                for service in self.services:
                    router = service.api_router()
                    if router is not None:
                        api.include_router(router)
                from mockhub.webhooks_config import webhooks_router

                api.include_router(webhooks_router(self.webhooks))
                self._simulator = Simulator(self.services, self.ctx)
                api.include_router(simulate_router(self._simulator))
                api.include_router(ui_router())
                api.include_router(tls_router(self.authority))
                self._api = api
            return self._api

    async def _inspection_api(self) -> FastAPI:
        if self._api is not None:
            return self._api
        if self._api_building is None:
            self._api_building = asyncio.get_running_loop().run_in_executor(None, lambda: self.api)
        return await self._api_building

    async def _own_target(self, url: str) -> str | None:
        """Why an outbound call to `url` would reach mockhub's own inspection API (see mockhub.outbound)."""
        return await own_listener_refusal(url, lambda: self.listeners().values(), self.http_port, self.router)

    def _reset_services(self, namespace: str | None) -> None:
        for service in self.services:
            service.reset(namespace)
        # Webhook configs posted to the API go with the stubs; those of the settings stay.
        self.webhooks.clear(namespace, keep_settings=True)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run background work (callbacks) that must not delay an answer; kept until done."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def _own_ports(self) -> tuple[int, ...]:
        """Ports of mockhub's own HTTP listeners: a proxied request naming one of them is for mockhub itself."""
        return (self.http_port,) if self.https_port is None else (self.http_port, self.https_port)

    def listeners(self) -> dict[str, int]:
        ports: dict[str, int] = {"http_port": self.http_port}
        for service in self.services:
            ports.update(service.listeners())
        # After the fakes' own: the ready line keeps reading `http://... smtp://...` first.
        if self.https_port is not None:
            ports["https_port"] = self.https_port
        return ports

    def addresses(self) -> dict[str, Any]:
        """Every bound listener, as `--ready-json` prints it: ports by name and the URL of each."""
        host = self.settings.host
        connect = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
        if ":" in connect:
            connect = f"[{connect}]"
        ports = self.listeners()
        urls = {
            name.removesuffix("_port"): f"{name.removesuffix('_port')}://{connect}:{port}"
            for name, port in ports.items()
        }
        return {"version": __version__, "host": host, **ports, "urls": urls}

    def health(self) -> dict[str, Any]:
        info = {
            "status": "ok" if self.ready else "starting",
            "version": __version__,
            **self.listeners(),
            **self.store.counts(),
            "store": self.store.status(),
            "connections": len(self.connections),
            "max_connections": self.settings.max_connections,
        }
        if self.recording is not None:
            info["recorded"] = self.recording.written
            info["record_failures"] = self.recording.failed
            info["record_file"] = str(self.recording.path)
        if self.settings.replay is not None:
            info["replay_skipped"] = len(self.replay_skipped)
        return info

    async def startup(self) -> None:
        await self.store.start()
        for service in self.services:
            await service.start()
        if self._api is None:
            self._api_building = asyncio.get_running_loop().run_in_executor(None, lambda: self.api)

    async def shutdown(self) -> None:
        for service in reversed(self.services):
            await service.stop()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.ctx.outbound.close()
        if self.recording is not None:
            self.recording.close()
        await self.store.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            namespace: str | None = None
            if path.startswith("/ns/"):
                namespace, _, rest = path[4:].partition("/")
                path = "/" + rest
            proxied: Intercepted | None = scope["extensions"].get(PROXY_KEY) if "extensions" in scope else None
            host, hostname, port = target_of(scope, proxied)
            # Through the proxy to somewhere that is not mockhub itself: never path-routed to any fake.
            foreign = proxied is not None and (port is None or port not in self._own_ports)
            found = self.router.match(path, scope["method"], scope, hostname, foreign)
            if found is not None:
                service, route, params = found
                if namespace is None and proxied is not None:
                    namespace = proxied.namespace
                await self.pipeline.handle(service, route, params, path, namespace, scope, receive, send, host)
                return
            if namespace is not None:
                await _send_json(send, 404, _NOT_FOUND)
                return
            if self._token is not None and not _is_open(path) and not self._authorized(scope):
                await _send_json(send, 401, _UNAUTHORIZED)
                return
            if scope["method"] not in _SAFE_METHODS and _cross_origin(scope):
                await _send_json(send, 403, _CROSS_ORIGIN)
                return
            if scope["method"] == "GET" and path in _OPEN_PATHS:
                # Answered here, not by the inspection API: health checks work from the first moment.
                await self._health_check(path, send)
                return
            if self.store.shared:
                # Every call acknowledged anywhere is seen by this read (the rule counters only when listed).
                try:
                    await self.store.sync(rules=path.startswith(("/faults", "/stubs")))
                except StoreUnavailable as exc:
                    body = orjson.dumps({"error": {"code": "store_unavailable", "message": str(exc)}})
                    await _send_json(send, 503, body)
                    return
            limited = await limited_body(
                scope, receive, send, self.settings.max_api_body_bytes, self.settings.body_timeout
            )
            if limited is None:
                return
            receive = limited
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        api = await self._inspection_api()
        await api(scope, receive, send)

    async def _health_check(self, path: str, send: Send) -> None:
        if self.store.shared and path != "/livez" and self.ready:
            # Cluster-wide counts; a store that is away shows as "store": "unavailable" (not ready).
            with contextlib.suppress(StoreUnavailable):
                await self.store.sync()
        if path == "/health":
            await _send_json(send, 200, orjson.dumps(self.health()))
        elif path == "/livez" or (self.ready and self.store.status() != "unavailable"):
            await _send_json(send, 200, b'{"status":"ok"}')
        elif self.ready:
            await _send_json(send, 503, b'{"status":"store_unavailable"}')
        else:
            await _send_json(send, 503, b'{"status":"starting"}')

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    # A listener of a fake's own (SMTP) could not start: `run` says so in one line, exit 2.
                    self.startup_error = _startup_error(exc)
                    await send({"type": "lifespan.startup.failed", "message": self.startup_error})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _startup_error(exc: Exception) -> str:
    if isinstance(exc, StoreUnavailable):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"a listener could not start: {exc.strerror}"
    return f"start-up failed: {exc!r}"


def _cross_origin(scope: Scope) -> bool:
    """A browser's request from a page of another origin (CSRF: `POST /reset` needs no preflight).

    Browsers send `Origin` with every cross-origin POST; clients, SDKs and the CLI send none, and
    the UI's own requests carry mockhub's origin. `Origin: null` (a sandboxed frame, a file) counts
    as foreign.
    """
    origin: str | None = None
    host = ""
    for name, value in scope["headers"]:
        if name == b"origin":
            origin = value.decode("latin-1")
        elif name == b"host":
            host = value.decode("latin-1")
    if origin is None:
        return False
    return origin.partition("://")[2].rstrip("/").lower() != host.lower()


# The UI's script and stylesheet hold no data (every call they make carries the token), and a browser
# loads them from <script>/<link> tags that cannot add one. The page itself, at whatever path it is
# served (/ui, /ui/, /ui/index.html), is gated like the API.
_OPEN_UI = frozenset({"/ui/app.js", "/ui/style.css"})


def _is_open(path: str) -> bool:
    return path in _OPEN_PATHS or path in _OPEN_UI


async def _send_json(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class MockhubServer(uvicorn.Server):
    """uvicorn's server, marking the hub ready (and announcing it) once every listener accepts."""

    def __init__(
        self, config: uvicorn.Config, hub: Hub, announce: bool = True, https_socket: socket.socket | None = None
    ) -> None:
        super().__init__(config)
        self.hub = hub
        # /health reports how many connections are open (uvicorn's own set of them) against the limit.
        hub.connections = self.server_state.connections
        self.announce = announce
        self.https_socket = https_socket

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal after shutting down, so the process would die *by* SIGTERM
        # (exit 143). Ours shuts down gracefully and then exits 0, as container runtimes expect.
        self._captured_signals.clear()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit:
            return
        if self.https_socket is not None:
            await self._serve_https(self.https_socket)
        self.hub.ready = True
        if self.announce:
            host = self.hub.settings.host
            parts = [f"http://{host}:{self.hub.http_port}"]
            for name, port in self.hub.listeners().items():
                if name != "http_port":
                    parts.append(f"{name.removesuffix('_port')}://{host}:{port}")
            print(f"mockhub {__version__} ready: " + "  ".join(parts), file=sys.stderr, flush=True)
        if self.hub.settings.ready_json:
            print(orjson.dumps(self.hub.addresses()).decode(), flush=True)

    async def _serve_https(self, sock: socket.socket) -> None:
        """The HTTPS listener: every connection starts with TLS (SNI picks the certificate), then the same app."""
        config = self.config
        loop = asyncio.get_running_loop()
        protocol_class: type[MockhubProtocol] = config.http_protocol_class  # type: ignore[assignment]

        def inner() -> MockhubProtocol:
            return protocol_class(config=config, server_state=self.server_state, app_state=self.lifespan.state)

        def front() -> TlsFront:
            return TlsFront(self.hub.authority, inner, None, self.hub.settings.header_timeout)

        server = await loop.create_server(front, sock=sock, backlog=config.backlog)
        # uvicorn closes its servers on shutdown; this one with them.
        self.servers.append(server)


def bind_socket(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:  # --workers: every process listens on the same port, the kernel spreads connections
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def make_server(hub: Hub, announce: bool = True) -> tuple[MockhubServer, socket.socket]:
    """A server for `hub` with its HTTP socket already bound (so port 0 is resolved before start)."""
    settings = hub.settings
    sock = bind_socket(settings.host, settings.http_port, settings.reuse_port)
    hub.http_port = sock.getsockname()[1]
    https_sock: socket.socket | None = None
    if settings.https_port is not None:
        https_sock = bind_socket(settings.host, settings.https_port, settings.reuse_port)
        hub.https_port = https_sock.getsockname()[1]
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it on every platform we support
        loop = "asyncio"
    protocol = type(
        "MockhubProtocol",
        (MockhubProtocol,),
        {
            "header_timeout": settings.header_timeout,
            "max_header_count": settings.max_header_count,
            "max_header_bytes": settings.max_header_bytes,
            "authority": hub.authority,
        },
    )
    config = uvicorn.Config(
        hub,
        http=protocol,
        limit_concurrency=settings.max_connections,
        loop=loop,
        lifespan="on",
        log_level=settings.log_level,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_keep_alive=30,
    )
    return MockhubServer(config, hub, announce, https_sock), sock


class GcFreezer:
    """A journal sink that keeps CPython's full garbage collections from stalling the server.

    A full (generation 2) collection walks every object the collector tracks, and a journal of
    100,000 calls is several hundred thousand of them: measured here, each such pause took
    140-250 ms, so one request in a hundred waited that long. Recorded calls hold no reference
    cycles (plain reference counting frees them when they are evicted or deleted), so every
    `every` calls this collects the young generations (so fresh cyclic garbage is not kept) and
    moves everything that survived into the permanent generation, out of the collector's walk.
    Used by `mockhub serve` only: in someone else's process (the pytest plugin) it would freeze
    their objects too.
    """

    def __init__(self, every: int = 4096) -> None:
        self.every = every
        self._count = 0

    def __call__(self, call: object) -> None:
        self._count += 1
        if self._count >= self.every:
            self._count = 0
            gc.collect(1)
            gc.freeze()


def run(settings: Settings) -> None:
    """Serve until SIGTERM / SIGINT (with `workers` > 1: this process and workers - 1 more)."""
    if settings.workers > 1:
        _run_workers(settings)
        return
    try:
        hub = Hub(settings)
    except (RecordingError, FakesError, PriceError, StoreError) as exc:
        print(f"mockhub: error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    # What is alive after start-up (modules, the app) never becomes garbage: keep it out of collections.
    gc.freeze()
    hub.journal.add_sink(GcFreezer())
    try:
        server, sock = make_server(hub)
    except OSError as exc:
        # A port in use (or not ours to bind) is the caller's to fix: one line and exit 2, no traceback.
        print(f"mockhub: error: cannot listen on {settings.host}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    # uvicorn reports a failed start-up in two log lines of its own (and exits 3): ours is one, exit 2.
    logging.getLogger("uvicorn.error").addFilter(lambda record: hub.startup_error is None)
    try:
        server.run(sockets=[sock])
    except SystemExit:
        if hub.startup_error is None:
            raise
    if hub.startup_error is not None:
        print(f"mockhub: error: {hub.startup_error}", file=sys.stderr, flush=True)
        raise SystemExit(2)


class ThreadedHub:
    """A real mockhub serving from a background thread (tests, the pytest plugin's in-process mode)."""

    def __init__(self, settings: Settings | None = None) -> None:

        self.hub = Hub(settings or Settings(host="127.0.0.1", http_port=0, smtp_port=0))
        self.server, sock = make_server(self.hub, announce=False)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, name="mockhub", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.hub.http_port}"

    @property
    def smtp_port(self) -> int:
        return self.hub.listeners()["smtp_port"]

    def start(self, timeout: float = 10.0) -> ThreadedHub:
        import time

        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.hub.ready:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("mockhub did not start")
            time.sleep(0.005)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> ThreadedHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _run_workers(settings: Settings) -> None:
    """`--workers N`: N processes on the same ports (SO_REUSEPORT), one event loop each, one shared store.

    The other N - 1 are `mockhub serve` started again with the same settings (by environment) as
    single workers; this process serves too, once they are ready, so its ready line means all are.
    """

    def fail(message: str) -> None:
        print(f"mockhub: error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(2)

    if settings.store in ("", "memory", "memory://"):
        fail(
            "--workers needs a shared store (--store redis://host:6379/0, MOCKHUB_STORE): with `memory` "
            "each process would keep a journal of its own"
        )
    ports = [settings.http_port, settings.smtp_port, settings.https_port, settings.smtps_port]
    if any(port == 0 for port in ports):
        fail("--workers needs fixed ports (port 0 would give each process a port of its own)")
    env = {**os.environ}
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            env[f"MOCKHUB_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    env.update(MOCKHUB_WORKERS="1", MOCKHUB_REUSE_PORT="true", MOCKHUB_READY_JSON="true")
    children: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(settings.workers - 1):
            children.append(
                subprocess.Popen([sys.executable, "-m", "mockhub", "serve"], env=env, stdout=subprocess.PIPE)
            )
        for child in children:
            assert child.stdout is not None
            if not child.stdout.readline():  # it printed its error and exited
                fail("a worker process did not start (see above)")
        run(settings.model_copy(update={"workers": 1, "reuse_port": True}))
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
