"""Part bodies sent from the file to the socket by the kernel (``sendfile(2)``).

httpx streams a body by iterating it: each piece is read from the file into a new ``bytes``
and copied again into the socket, with a trip through httpx, httpcore and h11 per piece.
Uploading 1 GiB that way cost the client 1.9-2.1 CPU-seconds, of which 0.5 s went to that
copy and those trips (``bench/client_bench.py``). :class:`SendfileTransport` sits under
``httpx.Client`` and sends a :class:`FileBody` over plain HTTP/1.1 itself: the head framed by
h11, the bytes by ``socket.sendfile`` straight from the page cache (read and sent piece by
piece instead to a server on this machine, see ``_spans``), the answer parsed by h11,
connections kept alive between parts. Any other request (TLS, a proxy, a body that is not a
file span) goes to the ordinary httpx transport underneath, which iterates the same body.
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, cast

import h11
import httpx

from chunkd.client._spans import is_loopback, sendfile_span

_MAX_ANSWER = 1024 * 1024  # an answer to a part is a few hundred bytes of JSON


class FileBody(httpx.SyncByteStream):
    """``length`` bytes of the open file ``fd`` from ``offset``, as a request body.

    ``sent(n)`` is called as bytes leave (it raises to stop the upload); ``chunks`` reads the
    span for a transport that iterates bodies."""

    def __init__(
        self,
        fd: int,
        offset: int,
        length: int,
        chunks: Callable[[], Iterator[bytes]],
        sent: Callable[[int], None],
    ) -> None:
        self.fd, self.offset, self.length = fd, offset, length
        self._chunks, self.sent = chunks, sent

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks():
            yield chunk
            self.sent(len(chunk))


class _Span:
    """What h11 is told was sent as the body: only its length matters (the bytes went by
    ``sendfile``; h11's data passthrough exists for this)."""

    def __init__(self, length: int) -> None:
        self.length = length

    def __len__(self) -> int:
        return self.length


class _Connection:
    def __init__(self, sock: socket.socket, copy: bool) -> None:
        self.sock = sock
        self.h11 = h11.Connection(h11.CLIENT)
        self.copy = copy  # send by copying, not by sendfile (a server on this machine)

    def expired(self) -> bool:
        """Closed (or sent something unasked) while idle in the pool."""
        if hasattr(select, "poll"):  # select() fails on descriptors past 1023
            poll = select.poll()
            poll.register(self.sock, select.POLLIN)
            return bool(poll.poll(0))
        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable)

    def close(self) -> None:
        self.sock.close()


class SendfileTransport(httpx.BaseTransport):
    """Sends :class:`FileBody` requests to ``http://`` URLs with ``sendfile``; hands every
    other request to ``inner``. Thread-safe: parts are sent from several threads at once.

    ``tls``, if given, makes the transport for ``https://`` URLs when the first one comes
    (loading the certificate store takes ~45 ms, a tenth of a short CLI run), and ``inner``
    only ever sees ``http://``."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        *,
        keep: int = 8,
        tls: Callable[[], httpx.BaseTransport] | None = None,
        copy_to_loopback: bool = True,
    ) -> None:
        self._inner = inner
        self._copy_to_loopback = copy_to_loopback
        self._keep = keep
        self._make_tls = tls
        self._tls: httpx.BaseTransport | None = None
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.stream
        if request.url.scheme == "https" and self._make_tls is not None:
            return self._secure().handle_request(request)
        if not isinstance(body, FileBody) or request.url.scheme != "http":
            return self._inner.handle_request(request)
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        origin = (request.url.host, request.url.port or 80)
        connection = self._pooled(origin)
        if connection is not None:
            try:
                return self._send(origin, connection, request, body, timeouts)
            except (httpx.WriteError, httpx.ReadError, httpx.RemoteProtocolError):
                pass  # the server closed it as it was taken from the pool: once more, anew
        connection = self._connect(origin, request, timeouts.get("connect"))
        return self._send(origin, connection, request, body, timeouts)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
            tls, self._tls = self._tls, None
        for connections in idle.values():
            for connection in connections:
                connection.close()
        self._inner.close()
        if tls is not None:
            tls.close()

    def _secure(self) -> httpx.BaseTransport:
        with self._lock:
            if self._tls is None:
                assert self._make_tls is not None
                self._tls = self._make_tls()
            return self._tls

    def _pooled(self, origin: tuple[str, int]) -> _Connection | None:
        """An idle connection to ``origin`` the server has not closed, if there is one."""
        while True:
            with self._lock:
                pooled = self._idle.get(origin)
                connection = pooled.pop() if pooled else None
            if connection is None or not connection.expired():
                return connection
            connection.close()

    def _connect(
        self, origin: tuple[str, int], request: httpx.Request, timeout: float | None
    ) -> _Connection:
        try:
            sock = socket.create_connection(origin, timeout=timeout)
        except TimeoutError as error:
            raise httpx.ConnectTimeout(str(error), request=request) from error
        except OSError as error:
            raise httpx.ConnectError(str(error), request=request) from error
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Connection(sock, self._copy_to_loopback and _local(sock))

    def _send(
        self,
        origin: tuple[str, int],
        connection: _Connection,
        request: httpx.Request,
        body: FileBody,
        timeouts: dict[str, float | None],
    ) -> httpx.Response:
        try:
            response = self._exchange(connection, request, body, timeouts)
        except BaseException:
            connection.close()
            raise
        if connection.h11.our_state is h11.DONE and connection.h11.their_state is h11.DONE:
            connection.h11.start_next_cycle()
            self._checkin(origin, connection)
        else:
            connection.close()
        return response

    def _checkin(self, origin: tuple[str, int], connection: _Connection) -> None:
        with self._lock:
            pooled = self._idle.setdefault(origin, [])
            if len(pooled) < self._keep:
                pooled.append(connection)
                return
        connection.close()

    def _exchange(
        self,
        connection: _Connection,
        request: httpx.Request,
        body: FileBody,
        timeouts: dict[str, float | None],
    ) -> httpx.Response:
        sock, state = connection.sock, connection.h11
        head = state.send(
            h11.Request(
                method=request.method, target=request.url.raw_path, headers=request.headers.raw
            )
        )
        try:
            sock.settimeout(timeouts.get("write"))
            sock.sendall(head or b"")
            if connection.copy:  # the body's own pieces, as httpx would send them
                for piece in body:
                    sock.sendall(piece)
            else:
                sendfile_span(sock, body.fd, body.offset, body.length, body.sent)
            # h11 types the data as bytes; passed through, only its length is used
            state.send_with_data_passthrough(h11.Data(data=cast(bytes, _Span(body.length))))
            state.send(h11.EndOfMessage())
        except OSError as error:
            # The server may have answered early (a refused part) and closed: that answer
            # says more than the broken pipe does.
            early = self._early_answer(connection, request)
            if early is not None:
                return early
            kind = httpx.WriteTimeout if isinstance(error, TimeoutError) else httpx.WriteError
            raise kind(str(error), request=request) from error
        sock.settimeout(timeouts.get("read"))
        return self._answer(connection, request)

    def _early_answer(
        self, connection: _Connection, request: httpx.Request
    ) -> httpx.Response | None:
        try:
            connection.sock.settimeout(1.0)
            return self._answer(connection, request)
        except (httpx.TransportError, OSError):
            return None

    @staticmethod
    def _answer(connection: _Connection, request: httpx.Request) -> httpx.Response:
        sock, state = connection.sock, connection.h11
        status, headers, content = 0, [], bytearray()
        try:
            while True:
                event: Any = state.next_event()
                if event is h11.NEED_DATA:
                    state.receive_data(sock.recv(65536))
                elif isinstance(event, h11.Response):
                    status, headers = event.status_code, list(event.headers)
                elif isinstance(event, h11.Data):
                    content += event.data
                    if len(content) > _MAX_ANSWER:
                        raise httpx.RemoteProtocolError("the answer is too long", request=request)
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    closed = "the server closed the connection"
                    raise httpx.RemoteProtocolError(closed, request=request)
        except TimeoutError as error:
            raise httpx.ReadTimeout(str(error), request=request) from error
        except OSError as error:
            raise httpx.ReadError(str(error), request=request) from error
        except h11.RemoteProtocolError as error:
            raise httpx.RemoteProtocolError(str(error), request=request) from error
        return httpx.Response(
            status,
            headers=headers,
            content=bytes(content),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )


def _local(sock: socket.socket) -> bool:
    """Whether the connected peer is this machine (no when that cannot be told: a
    connection reset already fails on its first send)."""
    try:
        return is_loopback(str(sock.getpeername()[0]))
    except OSError:
        return False
