"""``Client``'s runner: how it runs parallel sub-flows."""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import Any, cast

import pytest

from chunkd.client._effects import Parallel
from chunkd.client._sync import _Runner


def _runner() -> _Runner:
    return _Runner(cast(Any, None), cast(Any, None), cast(Any, None), threading.Event())


def test_the_next_part_starts_as_soon_as_any_one_ends() -> None:
    """With two slots, the third part starts when the quick one ends, while the slow one
    still runs: a runner waiting for whole rounds leaves a connection idle meanwhile."""
    events: list[str] = []
    third_started = threading.Event()

    def slow() -> Generator[Any, Any, str]:
        events.append("slow starts")
        assert third_started.wait(5), "the third part waited for the slow one"
        events.append("slow ends")
        return "slow"
        yield

    def quick() -> Generator[Any, Any, str]:
        events.append("quick")
        return "quick"
        yield

    def third() -> Generator[Any, Any, str]:
        events.append("third starts")
        third_started.set()
        return "third"
        yield

    results = _runner().parallel(Parallel(iter([slow(), quick(), third()]), 2))
    assert sorted(results) == ["quick", "slow", "third"]
    assert events.index("third starts") < events.index("slow ends")


def test_a_failing_part_stops_the_others_and_raises() -> None:
    runner = _runner()

    def failing() -> Generator[Any, Any, None]:
        raise ValueError("part 1 failed")
        yield

    def waiting() -> Generator[Any, Any, str]:
        assert runner.abort.wait(5)
        return "stopped"
        yield

    with pytest.raises(ValueError, match="part 1 failed"):
        runner.parallel(Parallel(iter([waiting(), failing()]), 2))
    assert runner.abort.is_set()
