"""Per-upload locks across server instances: PostgreSQL session advisory locks.

The same promise as :class:`~chunkd.uploads.locking.MemoryLocker` — one holder per upload,
and a newcomer asks the holder to release — when the holder may be another process on another
machine:

- Holding an upload's lock is holding ``pg_advisory_lock(key)`` on a connection of this
  locker's pool, kept for as long as the lock is held, with ``key`` a 64-bit hash of the
  upload id. Session advisory locks belong to the connection: when the holder's process dies
  (``kill -9``, a crash, a lost machine once TCP keepalives give up), PostgreSQL ends the
  session and the lock is free, without any lease to expire.
- Every connection that holds or wants an upload's lock ``LISTEN``\\ s on that upload's
  channel (``chunkd_lock_<key in hex>``). A newcomer that finds the lock taken sends
  ``NOTIFY … 'release'`` there; the holder's connection receives it and calls
  :meth:`Lease.request_release`, so its body loop stops, saves what arrived and lets go. A
  holder letting go sends ``'released'``, which wakes waiters at once; they also retry on a
  short back-off, and ask again each time, until they hold the lock or ``wait`` has passed
  (:class:`UploadLocked`).
- Within one instance, requests for the same upload first meet in a
  :class:`~chunkd.uploads.locking.MemoryLocker`: a local newcomer asks a local holder
  directly, and one instance never uses two connections for one upload.

If a holder's connection is lost while it holds the lock, the lock may pass to another
instance; the holder is asked to release at once. Offsets and states stay consistent even
then: every change is a compare-and-set in the catalog, which the lock only makes uncontended.

Session advisory locks and LISTEN need a real session: point the DSN at PostgreSQL itself or
at a pooler in *session* mode, never at PgBouncer in transaction mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Self

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from chunkd.catalog.postgres import advisory_key
from chunkd.exceptions import UploadLocked
from chunkd.uploads.locking import Lease, Locker, MemoryLocker

log = logging.getLogger("chunkd.locking")

_RELEASE = "release"  # newcomer to holder: please let go
_RELEASED = "released"  # holder to waiters: it is free now

# Ends the hold in one round trip: unlock, then tell waiters (delivered when this commits).
_UNLOCK = "SELECT pg_advisory_unlock($1), pg_notify($2, $3)"

# The server notices a vanished client (machine down, network cut) after about
# idle + interval x count seconds, rather than the kernel's default of two hours.
_KEEPALIVES = {
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}


def lock_key(upload_id: str) -> int:
    """The advisory-lock key of an upload: a signed 64-bit hash of its id."""
    return advisory_key(f"upload:{upload_id}")


def channel_name(key: int) -> str:
    """The LISTEN/NOTIFY channel of a lock key (an identifier, well under 63 bytes)."""
    return f"chunkd_lock_{key & 0xFFFF_FFFF_FFFF_FFFF:016x}"


class PostgresLocker(Locker):
    """Upload locks shared by every instance using the same PostgreSQL database.

    ``max_connections`` bounds the connections this instance opens for locks: one per upload
    it holds (or is waiting for) at a time. ``retry_interval`` is the first back-off between
    attempts of a waiting newcomer; it doubles up to ``max_retry_interval``.
    """

    def __init__(
        self,
        dsn: str,
        *,
        max_connections: int = 100,
        retry_interval: float = 0.02,
        max_retry_interval: float = 0.25,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._dsn = dsn
        self._max_connections = max_connections
        self._retry_interval = retry_interval
        self._max_retry_interval = max_retry_interval
        self._local = MemoryLocker()
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=0,
            max_size=self._max_connections,
            # a lock connection idles while its lock is held; an unused one is closed
            max_inactive_connection_lifetime=60.0,
            server_settings={"application_name": "chunkd-locks", **_KEEPALIVES},
        )

    async def close(self, grace: float = 10.0) -> None:
        """Close the pool, after up to ``grace`` seconds for holders to let go; then any lock
        still held is dropped with its session."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                async with asyncio.timeout(grace):
                    await pool.close()
            except TimeoutError:
                log.warning("upload locks still held at close; ending their sessions")
                pool.terminate()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the locker is not open")
        return self._pool

    def release_all(self) -> int:
        """Ask every holder in this instance to let go (the server is stopping)."""
        return self._local.release_all()

    def held(self, upload_id: str) -> bool:
        """Whether a request of this instance holds (or awaits) the upload's lock."""
        return self._local.held(upload_id)

    @asynccontextmanager
    async def hold(self, upload_id: str, *, wait: float) -> AsyncIterator[Lease]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        # First among this instance's requests: a local holder is asked directly.
        async with self._local.hold(upload_id, wait=wait) as lease:
            try:
                async with asyncio.timeout_at(deadline):
                    connection = await self.pool.acquire()
            except TimeoutError:
                raise UploadLocked(
                    f"all {self._max_connections} lock connections of this instance are in use"
                ) from None
            try:
                async with _Hold(connection, lock_key(upload_id), lease) as held:
                    await held.acquire(deadline, self._retry_interval, self._max_retry_interval)
                    yield lease
            finally:
                await self.pool.release(connection)


class _Hold:
    """One upload's advisory lock on one connection, and the notifications about it."""

    def __init__(self, connection: PoolConnectionProxy, key: int, lease: Lease) -> None:
        self._connection = connection
        self._key = key
        self._channel = channel_name(key)
        self._lease = lease
        self._pid = connection.get_server_pid()
        self._holding = False
        self._lost = False
        self._freed = asyncio.Event()

    async def __aenter__(self) -> Self:
        self._connection.add_termination_listener(self._on_termination)
        await self._connection.add_listener(self._channel, self._on_notification)
        return self

    async def acquire(self, deadline: float, interval: float, max_interval: float) -> None:
        loop = asyncio.get_running_loop()
        connection = self._connection
        while True:
            self._freed.clear()
            if await connection.fetchval("SELECT pg_try_advisory_lock($1)", self._key):
                self._holding = True
                return
            await connection.execute("SELECT pg_notify($1, $2)", self._channel, _RELEASE)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise UploadLocked("another request holds this upload")
            # Woken early when the holder announces it let go.
            try:
                async with asyncio.timeout(min(interval, remaining)):
                    await self._freed.wait()
            except TimeoutError:
                pass
            interval = min(interval * 2, max_interval)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection = self._connection
        holding, self._holding = self._holding, False
        if self._lost or connection.is_closed():
            return  # the pool took the dead connection back; its session holds no locks
        try:
            connection.remove_termination_listener(self._on_termination)
            if holding:
                await connection.execute(_UNLOCK, self._key, self._channel, _RELEASED)
            await connection.remove_listener(self._channel, self._on_notification)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            self._terminate()  # the session is unusable; a dead session holds no locks
        except BaseException:  # cancelled while letting go: end the session, which lets go
            self._terminate()
            raise

    def _terminate(self) -> None:
        with contextlib.suppress(asyncpg.InterfaceError):  # already back in the pool
            self._connection.terminate()

    def _on_notification(
        self,
        connection: asyncpg.Connection | PoolConnectionProxy,
        pid: int,
        channel: str,
        payload: object,
    ) -> None:
        if pid == self._pid:
            return  # our own request, echoed back to us
        if payload == _RELEASED:
            self._freed.set()
        elif payload == _RELEASE and self._holding:
            self._lease.request_release()

    def _on_termination(self, connection: asyncpg.Connection | PoolConnectionProxy) -> None:
        self._lost = True
        if self._holding:
            log.warning("lost the database session holding an upload lock; releasing it")
            self._lease.request_release()
