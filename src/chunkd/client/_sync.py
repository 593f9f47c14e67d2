"""``Client``: runs the upload flows over ``httpx.Client``, parts in parallel threads."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from chunkd.client._effects import (
    Checkpoint,
    FileDigest,
    FileSpan,
    Flow,
    Parallel,
    Progressed,
    Request,
    Response,
    Sleep,
    TransportFailure,
)
from chunkd.client._errors import Cancelled
from chunkd.client._files import FileReader
from chunkd.client._flow import UploadResult
from chunkd.client._job import Options, Protocol, UploadJob, response_headers
from chunkd.client._progress import ProgressCallback
from chunkd.client._retry import RetryPolicy
from chunkd.client._sendfile import FileBody, SendfileTransport
from chunkd.client._state import ResumeState


class Client:
    """``with Client("http://host:8080", token) as client: client.upload(path)``"""

    def __init__(
        self,
        server: str,
        token: str | None = None,
        *,
        parallel: int = 4,
        part_size: int | None = None,
        protocol: Protocol = "rest",
        retry: RetryPolicy | None = None,
        state: ResumeState | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.options = Options(
            server.rstrip("/"), token, parallel, part_size, protocol, retry or RetryPolicy(), state
        )
        settings = self.options.http_settings(timeout)
        if transport is None:  # parts go by sendfile where they can (see _sendfile)
            limits = settings["limits"]
            # http:// only (https goes to the tls transport): no TLS, no certificates to load
            plain = httpx.HTTPTransport(limits=limits, verify=False)
            transport = SendfileTransport(
                plain,
                keep=self.options.connections,
                tls=lambda: httpx.HTTPTransport(limits=limits),
            )
        self.http = httpx.Client(**settings, transport=transport)

    def upload(
        self,
        path: str | os.PathLike[str],
        *,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> UploadResult:
        """Upload one file, resuming a session an earlier run left; raises a ``ChunkdError``."""
        cancel = cancel or threading.Event()
        job = UploadJob(
            self.options, Path(path), metadata, content_type, on_progress, cancel.is_set
        )
        flow = job.prepare()
        with open(job.path, "rb", buffering=0) as file:
            try:
                result = _Runner(self.http, job, job.open(file.fileno()), cancel).run(flow)
            finally:
                job.close()
        return job.finished(result)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Runner:
    def __init__(
        self, http: httpx.Client, job: UploadJob, reader: FileReader, cancel: threading.Event
    ) -> None:
        self.http, self.job, self.reader, self.cancel = http, job, reader, cancel
        self.abort = threading.Event()  # a sibling part failed: the others stop too

    def stopped(self) -> bool:
        return self.cancel.is_set() or self.abort.is_set()

    def run(self, flow: Flow[Any]) -> Any:
        reply: Any = None
        while True:
            try:
                effect = flow.send(reply)
            except StopIteration as done:
                return done.value
            if self.stopped():
                flow.close()
                raise Cancelled("the upload was cancelled")
            reply = self.handle(effect)

    def handle(self, effect: object) -> Any:
        if isinstance(effect, Request):
            return self.request(effect)
        if isinstance(effect, Sleep):
            deadline = time.monotonic() + effect.seconds
            while (left := deadline - time.monotonic()) > 0:
                if self.cancel.wait(min(left, 0.1)) or self.abort.is_set():
                    raise Cancelled("the upload was cancelled")
            return None
        if isinstance(effect, Progressed):
            self.job.tracker.acknowledged(effect.bytes, effect.parts, effect.absolute)
            return None
        if isinstance(effect, Checkpoint):
            self.job.checkpoint(effect.session)
            return None
        if isinstance(effect, Parallel):
            return self.parallel(effect)
        if isinstance(effect, FileDigest):
            return self.job.sha256()
        raise TypeError(f"unknown effect {effect!r}")

    def request(self, request: Request) -> Response | TransportFailure:
        headers = dict(request.headers)
        body: FileBody | None = None
        streamed = [0]
        if request.body is not None:
            headers.update(self.reader.checksum(request.body))
            headers["Content-Length"] = str(request.body.length)
            body = self.body(request.body, streamed)
        try:
            built = self.http.build_request(
                request.method, request.url, headers=headers, json=request.json, content=body
            )
            if body is not None:
                built.stream = body  # as it is: the transport may send it with sendfile
            answer = self.http.send(built)
        except httpx.TransportError as error:
            return TransportFailure(f"{type(error).__name__}: {error}")
        finally:
            if streamed[0]:
                self.job.tracker.streamed(-streamed[0])
        return Response(answer.status_code, response_headers(answer.headers), answer.content)

    def body(self, span: FileSpan, streamed: list[int]) -> FileBody:
        """The span as a request body: never held whole, counted as it leaves, stopped
        between pieces once the upload is cancelled (``run`` checks before it starts)."""

        def sent(count: int) -> None:
            streamed[0] += count
            self.job.tracker.streamed(count)
            if self.stopped():
                raise Cancelled("the upload was cancelled")

        chunks = functools.partial(self.reader.chunks, span)
        return FileBody(self.reader.fd, span.offset, span.length, chunks, sent)

    def parallel(self, effect: Parallel) -> list[Any]:
        flows = iter(effect.flows)
        results: list[Any] = []
        with ThreadPoolExecutor(effect.limit, thread_name_prefix="chunkd-part") as pool:
            running: set[Future[Any]] = set()
            try:
                while True:
                    for flow in flows:
                        running.add(pool.submit(self.run, flow))
                        if len(running) >= effect.limit:
                            break
                    if not running:
                        return results
                    # the next part starts as soon as any one ends: waiting for a whole
                    # round would leave connections idle while its slowest part finishes
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        results.append(future.result())
            except BaseException:
                self.abort.set()  # the other parts stop at their next chunk
                raise
