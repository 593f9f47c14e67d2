"""Events cross instances through a real Redis (a private redis-server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chunkd.testing.redis import running_redis
from chunkd.uploads.events import COMPLETED, PROGRESS, Event
from chunkd.uploads.events_redis import RedisEventBus


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with running_redis() as url:
        yield url


async def test_a_subscriber_on_one_instance_sees_events_from_another(redis_url: str) -> None:
    a, b = RedisEventBus(redis_url), RedisEventBus(redis_url)
    await a.start()
    await b.start()
    try:
        with b.subscribe(upload_id="u1") as on_b, a.subscribe(upload_id="u1") as on_a:
            a.publish(Event(PROGRESS, "u1", "ann", {"bytes_received": 5}))
            a.publish(Event(COMPLETED, "u1", "ann", {"size": 5}))
            a.publish(Event(COMPLETED, "u2", "ann"))  # another upload: not for these
            seen = [await on_b.get(5), await on_b.get(5)]
            assert [e.type for e in seen if e] == [PROGRESS, COMPLETED]
            assert seen[0] is not None and seen[0].data == {"bytes_received": 5}
            assert seen[0].owner == "ann"
            assert await on_b.get(0.3) is None
            # the publishing instance's own subscriber gets each event once, not twice
            mine = [await on_a.get(1), await on_a.get(1), await on_a.get(0.3)]
            assert [e.type for e in mine if e] == [PROGRESS, COMPLETED]
    finally:
        await a.stop()
        await b.stop()
