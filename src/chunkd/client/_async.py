"""``AsyncClient``: runs the same upload flows over ``httpx.AsyncClient``, parts as tasks."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Iterator, Mapping
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
from chunkd.client._state import ResumeState


class AsyncClient:
    """``async with AsyncClient(url, token) as client: await client.upload(path)``

    Cancel an upload by cancelling its task (or setting ``cancel``); it stays resumable.
    """

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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.options = Options(
            server.rstrip("/"), token, parallel, part_size, protocol, retry or RetryPolicy(), state
        )
        self.http = httpx.AsyncClient(**self.options.http_settings(timeout), transport=transport)

    async def upload(
        self,
        path: str | os.PathLike[str],
        *,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: asyncio.Event | None = None,
    ) -> UploadResult:
        cancel = cancel or asyncio.Event()
        job = UploadJob(
            self.options, Path(path), metadata, content_type, on_progress, cancel.is_set
        )
        flow = await asyncio.to_thread(job.prepare)
        fd = await asyncio.to_thread(os.open, job.path, os.O_RDONLY)
        try:
            result = await _Runner(self.http, job, job.open(fd), cancel).run(flow)
        finally:
            await asyncio.to_thread(job.close)
            os.close(fd)
        return await asyncio.to_thread(job.finished, result)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class _Runner:
    def __init__(
        self, http: httpx.AsyncClient, job: UploadJob, reader: FileReader, cancel: asyncio.Event
    ) -> None:
        self.http, self.job, self.reader, self.cancel = http, job, reader, cancel

    async def run(self, flow: Flow[Any]) -> Any:
        reply: Any = None
        while True:
            try:
                effect = flow.send(reply)
            except StopIteration as done:
                return done.value
            if self.cancel.is_set():
                flow.close()
                raise Cancelled("the upload was cancelled")
            reply = await self.handle(effect)

    async def handle(self, effect: object) -> Any:
        if isinstance(effect, Request):
            return await self.request(effect)
        if isinstance(effect, Sleep):
            try:
                await asyncio.wait_for(self.cancel.wait(), effect.seconds)
            except TimeoutError:
                return None
            raise Cancelled("the upload was cancelled")
        if isinstance(effect, Progressed):
            self.job.tracker.acknowledged(effect.bytes, effect.parts, effect.absolute)
            return None
        if isinstance(effect, Checkpoint):
            await asyncio.to_thread(self.job.checkpoint, effect.session)
            return None
        if isinstance(effect, Parallel):
            return await self.parallel(effect)
        if isinstance(effect, FileDigest):
            return await asyncio.to_thread(self.job.sha256)
        raise TypeError(f"unknown effect {effect!r}")

    async def request(self, request: Request) -> Response | TransportFailure:
        headers = dict(request.headers)
        content: AsyncIterator[bytes] | None = None
        streamed = [0]
        if request.body is not None:
            headers.update(await asyncio.to_thread(self.reader.checksum, request.body))
            headers["Content-Length"] = str(request.body.length)
            content = self.chunks(request.body, streamed)
        try:
            answer = await self.http.request(
                request.method, request.url, headers=headers, json=request.json, content=content
            )
        except httpx.TransportError as error:
            return TransportFailure(f"{type(error).__name__}: {error}")
        finally:
            if streamed[0]:
                self.job.tracker.streamed(-streamed[0])
        return Response(answer.status_code, response_headers(answer.headers), answer.content)

    async def chunks(self, span: FileSpan, streamed: list[int]) -> AsyncIterator[bytes]:
        """The span read off the event loop, a few pieces per trip to a thread, and handed to
        httpx a piece at a time."""
        chunks = self.reader.chunks(span)
        while batch := await asyncio.to_thread(_take, chunks, _PIECES_PER_READ):
            for chunk in batch:
                if self.cancel.is_set():
                    raise Cancelled("the upload was cancelled")
                yield chunk
                streamed[0] += len(chunk)
                self.job.tracker.streamed(len(chunk))

    async def parallel(self, effect: Parallel) -> list[Any]:
        slots = asyncio.Semaphore(effect.limit)
        results: list[Any] = []

        async def one(flow: Flow[Any]) -> None:
            try:
                results.append(await self.run(flow))
            finally:
                slots.release()

        async with asyncio.TaskGroup() as group:
            for flow in effect.flows:
                await slots.acquire()  # at most ``limit`` parts read and in flight
                group.create_task(one(flow))
        return results


_PIECES_PER_READ = 4  # a MiB per trip to a thread


def _take(chunks: Iterator[bytes], count: int) -> list[bytes]:
    return list(itertools.islice(chunks, count))
