"""The composition root: settings in, a ready ASGI application out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse

from chunkd import __version__
from chunkd.catalog.base import Catalog
from chunkd.catalog.sqlite import SqliteCatalog
from chunkd.hooks.base import ALL
from chunkd.hooks.dispatcher import HandoffDispatcher, Hooks
from chunkd.hooks.targets import build_hook
from chunkd.protocol.tus.constants import EXPOSED_HEADERS, REQUEST_HEADERS
from chunkd.server.admin import build_admin_router
from chunkd.server.auth import Authenticator
from chunkd.server.events import build_events_router
from chunkd.server.logs import AccessLog
from chunkd.server.metrics import Metrics
from chunkd.server.middleware import MethodOverride, RequestId
from chunkd.server.rest import errors as rest_errors
from chunkd.server.rest.routes import RestApi, build_router
from chunkd.server.rest.signing import build_signing_router
from chunkd.server.tus.context import TusContext
from chunkd.server.tus.routes import tus_routes
from chunkd.settings import Settings, load_settings
from chunkd.storage.base import Storage
from chunkd.storage.local import LocalStorage
from chunkd.uploads.events import EventBus
from chunkd.uploads.events_peers import PeerEventBus
from chunkd.uploads.expiry import run_sweeper
from chunkd.uploads.inspection import Inspector
from chunkd.uploads.locking import Locker, MemoryLocker
from chunkd.uploads.locking_files import FileLocker
from chunkd.uploads.peers import Peers
from chunkd.uploads.service import ServiceConfig, UploadService
from chunkd.validation.clamav import ClamdScanner
from chunkd.validation.sniff import ContentPolicy, allowed_types

log = logging.getLogger("chunkd.server")


@contextlib.asynccontextmanager
async def peers_open(peers: Peers | None) -> AsyncIterator[None]:
    """With workers, their sockets are open whatever locks and relays events (the frontier
    relay needs them even when PostgreSQL and Redis do the rest)."""
    if peers is not None:
        await peers.open()
    try:
        yield
    finally:
        if peers is not None:
            await peers.close()


@contextlib.asynccontextmanager
async def events_running(events: EventBus) -> AsyncIterator[None]:
    """Start and stop a cross-instance bus (the in-process bus needs neither)."""
    start, stop = getattr(events, "start", None), getattr(events, "stop", None)
    if start is not None:
        await start()
    try:
        yield
    finally:
        if stop is not None:
            await stop()


def service_config(settings: Settings) -> ServiceConfig:
    return ServiceConfig(
        max_size=int(settings.max_size),
        expiry=settings.expiry,
        durable=settings.fsync,
        digests=tuple(settings.digests),
        idle_timeout=settings.idle_timeout,
        lock_wait=settings.lock_wait,
        min_rate=float(settings.min_rate),
        min_rate_window=settings.min_rate_window,
        max_open_uploads=settings.max_open_uploads,
        max_bytes_in_flight=int(settings.max_bytes_in_flight),
        max_bytes_stored=int(settings.max_bytes_stored),
    )


def build_inspector(settings: Settings) -> Inspector:
    scanner = None
    if settings.clamd:
        scanner = ClamdScanner(settings.clamd, timeout=settings.scan_timeout)
    return Inspector(ContentPolicy(allowed_types(settings.allowed_types)), scanner)


def build_hooks(settings: Settings) -> Hooks:
    secret = settings.hook_secret.get_secret_value() if settings.hook_secret else None
    hooks = [build_hook(target, secret, settings.hook_timeout) for target in settings.hooks]
    return Hooks(hooks, frozenset(settings.hook_events or ALL))


def build_storage(settings: Settings) -> Storage:
    if settings.storage == "s3":
        from chunkd.storage.s3 import S3Storage  # needs the s3 extra

        return S3Storage.from_settings(settings)
    assert settings.write_budget is not None  # the settings fill it in for the engine
    return LocalStorage(
        settings.data_dir.resolve(),
        batch_size=int(settings.write_batch),
        batch_budget=int(settings.write_budget),
        # early writeback only pays when every acknowledgement waits for the disk
        writeback=settings.fsync,
        direct=settings.direct_io,
    )


def build_peers(settings: Settings) -> Peers | None:
    """How workers of one data directory reach each other (``None``: one worker)."""
    if settings.workers == 1:
        return None
    return Peers(settings.peers_dir)


def build_events(settings: Settings, peers: Peers | None = None) -> EventBus:
    if settings.redis_url is None:
        if peers is not None:
            return PeerEventBus(peers)
        return EventBus()
    from chunkd.uploads.events_redis import RedisEventBus  # needs the redis extra

    return RedisEventBus(settings.redis_url.get_secret_value())


def build_catalog(settings: Settings) -> Catalog:
    if settings.catalog == "postgres":
        from chunkd.catalog.postgres import PostgresCatalog  # asyncpg: the postgres extra

        assert settings.postgres_dsn is not None  # the settings refuse postgres without one
        return PostgresCatalog(
            settings.postgres_dsn.get_secret_value(),
            pool_size=settings.postgres_pool_size,
            durable=settings.fsync,
        )
    return SqliteCatalog(settings.data_dir.resolve() / "catalog.sqlite3", durable=settings.fsync)


def build_locker(settings: Settings, peers: Peers | None = None) -> Locker:
    """Several instances sharing PostgreSQL lock uploads there; the workers of one instance,
    in a lock file; one worker, in memory."""
    if settings.catalog == "postgres":
        from chunkd.uploads.locking_postgres import PostgresLocker

        assert settings.postgres_dsn is not None
        return PostgresLocker(
            settings.postgres_dsn.get_secret_value(),
            max_connections=settings.postgres_lock_connections,
        )
    if peers is not None:
        return FileLocker(settings.run_dir / "locks", peers)
    return MemoryLocker()


def build_service(settings: Settings) -> UploadService:
    peers = build_peers(settings)
    return UploadService(
        build_catalog(settings),
        build_storage(settings),
        service_config(settings),
        inspector=build_inspector(settings),
        hooks=build_hooks(settings),
        events=build_events(settings, peers),
        locker=build_locker(settings, peers),
        peers=peers,
    )


def create_app(settings: Settings, service: UploadService | None = None) -> FastAPI:
    service = service or build_service(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            service.catalog,
            service.storage,
            peers_open(service.peers),
            service.locker,
            events_running(service.events),
        ):
            if auth.anonymous:
                log.warning(
                    "NO AUTHENTICATION: every client is anonymous and may touch every upload; "
                    "set CHUNKD_JWT_SECRET (or a public key / JWKS) before exposing chunkd"
                )
            recovered = await service.recover()
            if recovered:
                log.info("finished %d uploads interrupted by the last stop", recovered)
            dispatcher = HandoffDispatcher(
                service.catalog,
                service.hooks,
                retry_base=settings.hook_retry_base,
                max_attempts=settings.hook_max_attempts,
                events=service.events,
            )
            tasks = [
                asyncio.create_task(run_sweeper(service, settings.sweep_interval)),
                asyncio.create_task(dispatcher.run()),
            ]
            if metrics.shared is not None:  # an idle worker's figures reach the scrapes too
                tasks.append(asyncio.create_task(metrics.shared.keep_copying()))
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                await service.hooks.close()

    metrics = Metrics(service)
    middleware = [Middleware(RequestId), Middleware(AccessLog, metrics=metrics)]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"],
                allow_headers=list(REQUEST_HEADERS),
                expose_headers=list(EXPOSED_HEADERS),
                max_age=86400,
            )
        )
    middleware.append(Middleware(MethodOverride))
    app = FastAPI(
        title="chunkd",
        version=__version__,
        lifespan=lifespan,
        middleware=middleware,
        root_path_in_servers=False,
        openapi_url=f"{settings.base_path}/openapi.json",
        docs_url=f"{settings.base_path}/docs",
        redoc_url=None,
        redirect_slashes=False,  # /uploads/<id>/ is no upload: 404, not a redirect
    )
    auth = Authenticator.from_settings(settings)
    app.state.auth = auth
    app.state.tus = TusContext(service, settings.files_path, settings.behind_proxy, auth)
    app.state.service = service
    app.router.routes.extend(tus_routes(settings.files_path))
    rest_errors.install(app)
    rest_api = RestApi(settings.base_path, settings.files_path, settings.behind_proxy)
    app.include_router(build_router(rest_api))
    app.include_router(build_events_router(rest_api, settings.base_path))
    app.include_router(build_admin_router(rest_api, settings.base_path))
    app.include_router(
        build_signing_router(settings.base_path, settings.files_path, settings.behind_proxy)
    )

    app.add_route(f"{settings.base_path}/metrics", metrics.endpoint, include_in_schema=False)

    @app.get(f"{settings.base_path}/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get(f"{settings.base_path}/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        try:
            await service.catalog.ping()
            await service.storage.ping()
        except Exception as error:
            return JSONResponse({"status": "unavailable", "reason": str(error)}, 503)
        # which process answered: with --workers, each keep-alive connection stays with one
        return JSONResponse({"status": "ready", "pid": os.getpid()})

    return app


def app_from_env() -> FastAPI:
    """Factory for ASGI servers that import the app by name (granian workers)."""
    return create_app(load_settings())
