from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from chunkd.exceptions import (
    ChecksumMismatch,
    FinalUploadImmutable,
    InvalidConcatenation,
    LengthAlreadySet,
    LengthExceeded,
    OffsetMismatch,
    PartTakenOver,
    RequestTooSlow,
    ServiceUnavailable,
    UploadAborted,
    UploadExpired,
    UploadNotFound,
    UploadNotReceiving,
    UploadTooLarge,
)
from chunkd.protocol.checksums import Checksum
from chunkd.storage.memory import MemoryStorage
from chunkd.uploads.models import UploadState
from chunkd.uploads.service import BodyInterrupted, UploadService
from tests.uploads.conftest import Clock, body


def stored(service: UploadService, upload_id: str) -> bytes:
    assert isinstance(service.storage, MemoryStorage)
    return bytes(service.storage.blobs[upload_id])


async def test_appends_in_pieces_complete_with_digest(service: UploadService) -> None:
    upload = await service.create(length=10, metadata={"filename": "a"})
    upload = await service.append(upload.id, 0, body(b"0123", b"4"))
    assert (upload.offset, upload.state) == (5, UploadState.RECEIVING)
    upload = await service.append(upload.id, 5, body(b"56789"))
    assert upload.state is UploadState.COMPLETE
    assert upload.digests == {"sha256": hashlib.sha256(b"0123456789").hexdigest()}
    assert upload.expires_at is None
    assert stored(service, upload.id) == b"0123456789"


async def test_offset_must_match(service: UploadService) -> None:
    upload = await service.create(length=10)
    await service.append(upload.id, 0, body(b"abc"))
    for offset in (0, 2, 4):
        with pytest.raises(OffsetMismatch):
            await service.append(upload.id, offset, body(b"x"))
    assert (await service.get(upload.id)).offset == 3


async def test_too_large_and_past_length(service: UploadService) -> None:
    with pytest.raises(UploadTooLarge):
        await service.create(length=1001)
    upload = await service.create(length=4)
    with pytest.raises(LengthExceeded):
        await service.append(upload.id, 0, body(b"abcde"), content_length=5)
    with pytest.raises(LengthExceeded):  # no Content-Length: caught while streaming
        await service.append(upload.id, 0, body(b"abc", b"de"))
    assert (await service.get(upload.id)).offset == 0


async def test_deferred_length(service: UploadService) -> None:
    upload = await service.create(length=None)
    upload = await service.append(upload.id, 0, body(b"abc"))
    assert upload.length is None
    with pytest.raises(UploadTooLarge):
        await service.append(upload.id, 3, body(b"x" * 998))
    with pytest.raises(LengthExceeded):
        await service.append(upload.id, 3, body(b""), declare_length=2)
    upload = await service.append(upload.id, 3, body(b"de"), declare_length=5)
    assert (upload.length, upload.state) == (5, UploadState.COMPLETE)
    with pytest.raises(UploadNotReceiving):
        await service.append(upload.id, 5, body(b""))


async def test_length_cannot_change_once_set(service: UploadService) -> None:
    upload = await service.create(length=5)
    with pytest.raises(LengthAlreadySet):
        await service.append(upload.id, 0, body(b"a"), declare_length=6)
    assert (await service.append(upload.id, 0, body(b"a"), declare_length=5)).offset == 1


async def test_checksum_mismatch_commits_nothing(service: UploadService) -> None:
    upload = await service.create(length=6)
    bad = Checksum("sha1", hashlib.sha1(b"nope").digest())
    with pytest.raises(ChecksumMismatch):
        await service.append(upload.id, 0, body(b"abc"), checksum=bad)
    assert (await service.get(upload.id)).offset == 0
    good = Checksum("sha1", hashlib.sha1(b"abc").digest())
    await service.append(upload.id, 0, body(b"abc"), checksum=good)
    done = await service.append(upload.id, 3, body(b"def"))
    # the refused bytes left no trace in the whole-file digest either
    assert done.digests["sha256"] == hashlib.sha256(b"abcdef").hexdigest()


async def cut_after(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
    raise BodyInterrupted


async def test_interrupted_body_keeps_its_prefix(service: UploadService) -> None:
    upload = await service.create(length=10)
    upload = await service.append(upload.id, 0, cut_after(b"abc", b"d"))
    assert upload.offset == 4
    done = await service.append(upload.id, 4, body(b"efghij"))
    assert done.digests["sha256"] == hashlib.sha256(b"abcdefghij").hexdigest()


async def test_interrupted_body_with_checksum_counts_for_nothing(service: UploadService) -> None:
    upload = await service.create(length=10)
    checksum = Checksum("md5", hashlib.md5(b"abcdefghij").digest())
    upload = await service.append(upload.id, 0, cut_after(b"abc"), checksum=checksum)
    assert upload.offset == 0


async def test_lost_digest_state_is_recomputed_at_completion(service: UploadService) -> None:
    upload = await service.create(length=6)
    await service.append(upload.id, 0, body(b"abc"))
    service.digests.forget(upload.id)  # as after a restart
    done = await service.append(upload.id, 3, body(b"def"))
    assert done.digests["sha256"] == hashlib.sha256(b"abcdef").hexdigest()


async def test_empty_upload_is_complete_at_creation(service: UploadService) -> None:
    upload = await service.create(length=0)
    assert upload.state is UploadState.COMPLETE
    assert upload.digests["sha256"] == hashlib.sha256(b"").hexdigest()


async def test_unknown_invalid_and_foreign_ids(service: UploadService) -> None:
    for upload_id in ("0" * 32, "../../etc", "%2e%2e", ""):
        with pytest.raises(UploadNotFound):
            await service.get(upload_id)
    upload = await service.create(length=3, owner="alice")
    with pytest.raises(UploadNotFound):
        await service.get(upload.id, owner="bob")
    with pytest.raises(UploadNotFound):
        await service.append(upload.id, 0, body(b"abc"), owner="bob")
    assert (await service.get(upload.id, owner="alice")).offset == 0


async def test_terminate_then_gone(service: UploadService) -> None:
    upload = await service.create(length=3)
    await service.append(upload.id, 0, body(b"ab"))
    await service.terminate(upload.id)
    assert isinstance(service.storage, MemoryStorage)
    assert upload.id not in service.storage.blobs
    with pytest.raises(UploadAborted):
        await service.get(upload.id)
    with pytest.raises(UploadAborted):
        await service.append(upload.id, 2, body(b"c"))


async def test_expired_uploads_answer_gone(service: UploadService, clock: Clock) -> None:
    upload = await service.create(length=3)
    clock.now += 1800
    await service.append(upload.id, 0, body(b"a"))  # activity renews the expiry
    clock.now += 3000
    assert (await service.get(upload.id)).offset == 1
    clock.now += 1000
    with pytest.raises(UploadExpired):
        await service.get(upload.id)


async def test_parts_renew_the_expiry_at_most_every_few_seconds(clock: Clock) -> None:
    from chunkd.catalog.memory import MemoryCatalog
    from chunkd.uploads.service import ServiceConfig

    config = ServiceConfig(max_size=10**6, expiry=3600)
    service = UploadService(MemoryCatalog(), MemoryStorage(), config, clock=clock)
    async with service.catalog, service.storage:
        await _renewals(service, clock)


async def _renewals(service: UploadService, clock: Clock) -> None:
    session = await service.sessions.create(size=300_000, metadata={}, part_size=100_000)
    created = session.expires_at
    await service.sessions.put_part(session.id, 0, body(b"a" * 100_000))
    clock.now += 5  # a part soon after: no commit just to move the expiry by seconds
    await service.sessions.put_part(session.id, 1, body(b"b" * 100_000))
    assert (await service.get(session.id)).expires_at == created
    clock.now += 3000  # a part long after renews it
    await service.sessions.put_part(session.id, 2, body(b"c" * 100_000))
    renewed = await service.get(session.id)
    assert renewed.expires_at == clock.now + 3600 and renewed.updated_at == clock.now


async def test_concatenation(service: UploadService) -> None:
    parts = []
    for data in (b"hello ", b"big ", b"world"):
        part = await service.create(length=len(data), partial=True)
        part = await service.append(part.id, 0, body(data))
        assert part.state is UploadState.COMPLETE and part.digests == {}
        parts.append(part.id)
    final = await service.concatenate(tuple(parts), metadata={"filename": "x"})
    assert final.state is UploadState.COMPLETE
    assert final.concat_parts == tuple(parts)
    assert stored(service, final.id) == b"hello big world"
    assert final.digests["sha256"] == hashlib.sha256(b"hello big world").hexdigest()
    with pytest.raises(FinalUploadImmutable):
        await service.append(final.id, final.offset, body(b""))


async def test_concatenation_refusals(service: UploadService) -> None:
    unfinished = await service.create(length=5, partial=True)
    whole = await service.create(length=1)
    await service.append(whole.id, 0, body(b"x"))
    for parts in ((unfinished.id,), (whole.id,), ("0" * 32,)):
        with pytest.raises(InvalidConcatenation):
            await service.concatenate(parts)
    big = []
    for _ in range(2):
        part = await service.create(length=600, partial=True)
        await service.append(part.id, 0, body(b"x" * 600))
        big.append(part.id)
    with pytest.raises(UploadTooLarge):
        await service.concatenate(tuple(big))


async def test_a_new_request_takes_over_a_stalled_one(service: UploadService) -> None:
    upload = await service.create(length=10)
    stalled = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield b"abc"
        stalled.set()
        await asyncio.sleep(3600)
        yield b"never"

    first = asyncio.create_task(service.append(upload.id, 0, stalls()))
    await stalled.wait()
    # The newcomer offers offset 0 (what it last saw); the stalled request saves its three
    # bytes and yields at once, so the newcomer learns the true offset instead of waiting.
    with pytest.raises(OffsetMismatch):
        await asyncio.wait_for(service.append(upload.id, 0, body(b"abc")), timeout=1)
    assert (await first).offset == 3
    assert (await service.append(upload.id, 3, body(b"defghij"))).state is UploadState.COMPLETE


async def test_concurrent_appends_at_one_offset_one_wins(service: UploadService) -> None:
    upload = await service.create(length=6)
    results = await asyncio.gather(
        *(service.append(upload.id, 0, body(b"abc")) for _ in range(5)), return_exceptions=True
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, OffsetMismatch) for r in results if isinstance(r, Exception))
    assert (await service.get(upload.id)).offset == 3


async def test_recover_finishes_fully_received_uploads(service: UploadService) -> None:
    upload = await service.create(length=3)
    await service.append(upload.id, 0, body(b"ab"))
    # as if the server died between committing the last offset and finishing
    await service.catalog.compare_and_set(upload.id, {}, {"offset": 3})
    assert isinstance(service.storage, MemoryStorage)
    service.storage.blobs[upload.id][2:3] = b"c"
    assert await service.recover() == 1
    done = await service.get(upload.id)
    assert done.state is UploadState.COMPLETE
    assert done.digests["sha256"] == hashlib.sha256(b"abc").hexdigest()


async def test_a_trickling_body_is_ended_and_its_prefix_kept(clock: Clock) -> None:
    from chunkd.catalog.memory import MemoryCatalog
    from chunkd.uploads.service import ServiceConfig

    service = UploadService(
        MemoryCatalog(),
        MemoryStorage(),
        ServiceConfig(max_size=1000, min_rate=1000, min_rate_window=0.2, idle_timeout=5),
        clock=clock,
    )

    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x"
            await asyncio.sleep(0.02)  # 50 bytes/s, far under 1000 bytes/s

    async with service.catalog, service.storage:
        upload = await service.create(length=100)
        started = asyncio.get_running_loop().time()
        upload = await service.append(upload.id, 0, trickle())
        assert asyncio.get_running_loop().time() - started < 1.0
        assert 5 <= upload.offset < 100  # ended early, what arrived is kept
        session = await service.sessions.create(size=100, metadata={}, part_size=65536)
        from chunkd.exceptions import RequestTooSlow

        with pytest.raises(RequestTooSlow):
            await service.sessions.put_part(session.id, 0, trickle())
        assert await service.catalog.list_parts(session.id) == []


async def test_a_part_stored_with_sha256_is_still_recognised_when_sent_again(
    service: UploadService,
) -> None:
    from chunkd.exceptions import PartConflict
    from chunkd.uploads.models import Part

    data = bytes(range(100))
    session = await service.sessions.create(size=100, metadata={}, part_size=65536)
    older = Part(0, 100, f"sha256:{hashlib.sha256(data).hexdigest()}")
    assert await service.catalog.add_part(session.id, older)
    part, new = await service.sessions.put_part(session.id, 0, body(data[:30], data[30:]))
    assert (part, new) == (older, False)
    with pytest.raises(PartConflict):
        await service.sessions.put_part(session.id, 0, body(b"x" * 100))
    fresh = await service.sessions.create(size=100, metadata={}, part_size=65536)
    part, new = await service.sessions.put_part(fresh.id, 0, body(data))
    assert new and part.digest.startswith("blake3:")


async def test_the_frontier_commits_a_step_at_a_time(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chunkd.catalog.memory import MemoryCatalog
    from chunkd.uploads import frontier
    from chunkd.uploads.service import ServiceConfig

    monkeypatch.setattr(frontier, "_FRONTIER_STEP", 200_000)
    config = ServiceConfig(max_size=10**6, expiry=3600)
    service = UploadService(MemoryCatalog(), MemoryStorage(), config, clock=clock)
    async with service.catalog, service.storage:
        await _stepping(service, monkeypatch)


async def _stepping(service: UploadService, monkeypatch: pytest.MonkeyPatch) -> None:
    session = await service.sessions.create(size=500_000, metadata={}, part_size=100_000)
    for index in (1, 2, 3, 4):  # all but the first: nothing contiguous yet
        await service.sessions.put_part(session.id, index, body(bytes([index]) * 100_000))
    await asyncio.gather(*list(service.frontiers._tasks))
    assert (await service.get(session.id)).offset == 0
    committed: list[int] = []
    compare_and_set = service.catalog.compare_and_set

    async def spy(upload_id: str, expected: Any, changes: Any) -> Any:
        if "offset" in changes:
            committed.append(changes["offset"])
        return await compare_and_set(upload_id, expected, changes)

    monkeypatch.setattr(service.catalog, "compare_and_set", spy)
    await service.sessions.put_part(session.id, 0, body(b"\0" * 100_000))
    await asyncio.gather(*list(service.frontiers._tasks))
    assert committed == [200_000, 400_000, 500_000]
    done = await service.sessions.complete(session.id)
    data = b"".join(bytes([index]) * 100_000 for index in range(5))
    assert done.digests["sha256"] == hashlib.sha256(data).hexdigest()


async def test_one_frontier_advance_at_a_time_even_as_the_lock_changes_hands(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An advance that arrives while the lock passes from one advance to the next must wait
    too: two at once would read back and hash the same parts twice."""
    from chunkd.catalog.memory import MemoryCatalog
    from chunkd.uploads.service import ServiceConfig

    service = UploadService(MemoryCatalog(), MemoryStorage(), ServiceConfig(), clock=clock)
    frontiers = service.frontiers
    running = [0, 0]  # now, most at once

    async def step(upload_id: str, alone: bool) -> tuple[None, bool]:
        running[0] += 1
        running[1] = max(running)
        for _ in range(5):
            await asyncio.sleep(0)
        running[0] -= 1
        return None, False

    monkeypatch.setattr(frontiers, "_step", step)
    first = asyncio.create_task(frontiers.advance("u"))
    second = asyncio.create_task(frontiers.advance("u"))  # waits for the first
    await asyncio.wait({first})
    third = asyncio.create_task(frontiers.advance("u"))  # the second holds the lock now
    await asyncio.gather(second, third)
    assert running[1] == 1
    assert frontiers._locks == {}  # nothing left behind
    # one advance running and one waiting: a part stored now needs no third
    waiting = [asyncio.create_task(frontiers.advance("u")) for _ in range(2)]
    await asyncio.sleep(0)
    frontiers.spawn("u")
    assert not frontiers._tasks
    await asyncio.gather(*waiting)


async def test_a_part_taken_over_by_another_request_for_it_is_told_to_send_it_again(
    clock: Clock,
) -> None:
    """A copy of a part the network delivered late (its client gave up and retried) takes the
    part over from the retry in flight: the retry must hear "send it again", retryable, not
    that its part had the wrong size (which clients rightly treat as fatal)."""
    from chunkd.catalog.memory import MemoryCatalog
    from chunkd.uploads.service import ServiceConfig

    config = ServiceConfig(max_size=10**6, expiry=3600)
    service = UploadService(MemoryCatalog(), MemoryStorage(), config, clock=clock)
    async with service.catalog, service.storage:
        await _taken_over(service)


async def _taken_over(service: UploadService) -> None:
    session = await service.sessions.create(size=300_000, metadata={}, part_size=100_000)
    first_half = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield b"x" * 40_000
        first_half.set()
        await asyncio.sleep(10)  # the rest would follow; the other request comes first
        yield b"x" * 60_000

    live = asyncio.create_task(service.sessions.put_part(session.id, 0, slow()))
    await first_half.wait()
    part, new = await service.sessions.put_part(session.id, 0, body(b"x" * 100_000))
    assert new and part.size == 100_000
    with pytest.raises(PartTakenOver) as taken:
        await live
    assert taken.value.retryable and taken.value.status == 409


async def test_a_part_whose_body_stalls_is_told_to_send_it_again(clock: Clock) -> None:
    from chunkd.catalog.memory import MemoryCatalog
    from chunkd.uploads.service import ServiceConfig

    config = ServiceConfig(max_size=10**6, expiry=3600, idle_timeout=0.1)
    service = UploadService(MemoryCatalog(), MemoryStorage(), config, clock=clock)
    async with service.catalog, service.storage:
        session = await service.sessions.create(size=300_000, metadata={}, part_size=100_000)

        async def stalled() -> AsyncIterator[bytes]:
            yield b"x" * 40_000
            await asyncio.sleep(10)
            yield b"x" * 60_000

        with pytest.raises(RequestTooSlow) as slow:
            await service.sessions.put_part(session.id, 0, stalled())
        assert slow.value.retryable
        assert (await service.sessions.received(await service.get(session.id)))[0] == []


async def test_a_part_cut_short_by_the_server_stopping_is_told_to_retry(clock: Clock) -> None:
    from chunkd.catalog.memory import MemoryCatalog
    from chunkd.uploads.service import ServiceConfig

    config = ServiceConfig(max_size=10**6, expiry=3600)
    service = UploadService(MemoryCatalog(), MemoryStorage(), config, clock=clock)
    async with service.catalog, service.storage:
        session = await service.sessions.create(size=300_000, metadata={}, part_size=100_000)
        first_half = asyncio.Event()

        async def slow() -> AsyncIterator[bytes]:
            yield b"x" * 40_000
            first_half.set()
            await asyncio.sleep(10)
            yield b"x" * 60_000

        part = asyncio.create_task(service.sessions.put_part(session.id, 0, slow()))
        await first_half.wait()
        assert service.begin_shutdown() == 1
        with pytest.raises(ServiceUnavailable) as stopping:
            await part
        assert stopping.value.retryable and stopping.value.status == 503
