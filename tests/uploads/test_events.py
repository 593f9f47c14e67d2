from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from chunkd.uploads.events import (
    COMPLETED,
    CREATED,
    PROGRESS,
    Event,
    EventBus,
    ProgressMeter,
)
from chunkd.uploads.service import UploadService
from tests.uploads.conftest import body


def test_subscribers_get_their_uploads_or_owners_events() -> None:
    bus = EventBus()
    with bus.subscribe(upload_id="u1") as one, bus.subscribe(owner="ann") as ann:
        with bus.subscribe() as everyone:
            bus.publish(Event(CREATED, "u1", "ann"))
            bus.publish(Event(CREATED, "u2", "bob"))
            assert [e.upload_id for e in everyone._events] == ["u1", "u2"]
        assert [e.upload_id for e in one._events] == ["u1"]
        assert [e.upload_id for e in ann._events] == ["u1"]
    assert bus.subscribers == 0


async def test_a_full_queue_drops_stale_progress_first() -> None:
    bus = EventBus(queue_size=3)
    with bus.subscribe(upload_id="u") as slow:
        bus.publish(Event(CREATED, "u", None))
        for n in range(10):
            bus.publish(Event(PROGRESS, "u", None, {"bytes_received": n}))
        bus.publish(Event(COMPLETED, "u", None))
        got = [await slow.get(0.1) for _ in range(3)]
        assert [e.type for e in got if e] == [CREATED, PROGRESS, COMPLETED]
        assert got[1] is not None and got[1].data["bytes_received"] == 9  # the latest
        assert await slow.get(0.01) is None
        assert slow.dropped == 9


def test_progress_is_throttled_to_at_most_ten_a_second() -> None:
    bus = EventBus()
    now = [0.0]
    meter = ProgressMeter(bus, clock=lambda: now[0])
    with bus.subscribe() as sub:
        for step in range(100):  # 100 updates over one second
            now[0] = step / 100
            meter.update("u", None, step * 1000, 200_000)
        progress = list(sub._events)
    assert 3 <= len(progress) <= 10
    last = progress[-1].data
    assert last["rate"] > 0 and last["eta"] is not None


async def test_the_service_tells_the_story_of_an_upload(service: UploadService) -> None:
    with service.events.subscribe() as sub:

        async def slow() -> AsyncIterator[bytes]:
            for _ in range(5):
                yield b"x" * 10
                await asyncio.sleep(0.12)

        upload = await service.create(length=60, metadata={"filename": "a"})
        upload = await service.append(upload.id, 0, slow())
        await service.append(upload.id, 50, body(b"y" * 10))
        kinds = []
        while (event := await sub.get(0.01)) is not None:
            kinds.append(event.type)
    assert kinds[0] == CREATED
    assert PROGRESS in kinds
    assert kinds[-2:] == ["verifying", COMPLETED]
