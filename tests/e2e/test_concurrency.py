"""One writer per upload, against the real server process: racing PATCHes never both write,
and a stalled request is taken over at once by a newcomer instead of blocking it."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from chunkd.testing.server import ServerProcess
from tests.e2e.tus import (
    TUS,
    RawPatch,
    RawResponse,
    assert_stored,
    create,
    finish,
    offset_of,
    patch,
)

SIZES = [64 << 10, 1 << 20, 4 << 20]


def check_race(statuses: list[int], offsets: list[int | None], length: int) -> None:
    """Exactly one of two identical PATCHes succeeds; the other is refused (409 or 423)."""
    assert sorted(statuses) in ([204, 409], [204, 423]), (statuses, offsets)
    winner = offsets[statuses.index(204)]
    assert winner is not None and 0 < winner <= length, (statuses, offsets)


def patch_at_once(start: threading.Barrier, location: str, source: bytes) -> tuple[int, int | None]:
    """PATCH all of ``source`` from offset 0 on a fresh connection, released with the other."""
    with httpx.Client(timeout=15) as own:
        own.head(location, headers=TUS)  # connect first, so the two PATCHes leave together
        start.wait()
        answer = patch(own, location, 0, source)
        offset = answer.headers.get("Upload-Offset")
        return answer.status_code, None if offset is None else int(offset)


@pytest.mark.e2e
@pytest.mark.parametrize("length", SIZES, ids=["64KiB", "1MiB", "4MiB"])
def test_two_identical_patches_at_once_never_both_succeed(
    server: ServerProcess, length: int
) -> None:
    rng = random.Random(length)
    with httpx.Client(timeout=15) as client:
        for _ in range(3):
            source = rng.randbytes(length)
            location = create(client, server, length)
            start = threading.Barrier(2)
            with ThreadPoolExecutor(2) as pool:
                racers = [pool.submit(patch_at_once, start, location, source) for _ in range(2)]
                results = [racer.result() for racer in racers]
            check_race([status for status, _ in results], [o for _, o in results], length)
            finish(client, location, source)
            assert_stored(client, location, source)


@pytest.mark.e2e
@pytest.mark.parametrize("length", SIZES, ids=["64KiB", "1MiB", "4MiB"])
def test_two_patches_whose_headers_both_arrive_before_their_bodies(
    server: ServerProcess, length: int
) -> None:
    """The tightest race: the second request asks the first to yield before the first has
    read a byte of its body. Still exactly one 204."""
    rng = random.Random(length + 1)
    with httpx.Client(timeout=15) as client:
        for _ in range(3):
            source = rng.randbytes(length)
            location = create(client, server, length)
            with RawPatch(location, 0, length) as first, RawPatch(location, 0, length) as second:
                time.sleep(0.1)  # both are at the server, the second asking the first to yield
                senders = [
                    threading.Thread(target=r.send_unless_closed, args=(source,))
                    for r in (first, second)
                ]
                for sender in senders:
                    sender.start()
                answers = [first.response(timeout=10), second.response(timeout=10)]
                for sender in senders:
                    sender.join()
            assert None not in answers, answers
            done = [answer for answer in answers if answer is not None]
            check_race(
                [answer.status for answer in done],
                [_offset(answer) for answer in done],
                length,
            )
            finish(client, location, source)
            assert_stored(client, location, source)


def _offset(answer: RawResponse) -> int | None:
    value = answer.headers.get("upload-offset")
    return None if value is None else int(value)


@pytest.mark.e2e
def test_a_new_patch_takes_over_a_stalled_one_at_once(server: ServerProcess) -> None:
    """A phone reconnects while its old connection is stalled mid-body: the new PATCH is
    answered within seconds (the idle timeout is 60 s), the old one's prefix is kept."""
    rng = random.Random(7)
    length = 4 << 20
    half = length // 2
    source = rng.randbytes(length)
    with httpx.Client(timeout=10) as client:
        location = create(client, server, length)
        with RawPatch(location, 0, length) as stalled:
            stalled.send(source[:half])
            time.sleep(0.3)  # the server has read the half; now the connection just hangs

            began = time.monotonic()
            before = offset_of(client, location)  # HEAD takes no lock: answers at once
            assert time.monotonic() - began < 1.0
            assert before == 0, "the stalled request acknowledged bytes before it ended"

            began = time.monotonic()
            answer = patch(client, location, before, source[before:])
            took = time.monotonic() - began
            assert took < 3.0, f"the new PATCH waited {took:.1f}s for the stalled one"
            if answer.status_code == 204:  # the stalled request had saved nothing
                assert answer.headers["Upload-Offset"] == str(length)
            else:
                assert answer.status_code == 409, (answer.status_code, answer.text)
                resumed = offset_of(client, location)
                assert resumed == half, "the stalled request's prefix was not saved"
                answer = patch(client, location, resumed, source[resumed:])
                assert answer.status_code == 204, (answer.status_code, answer.text)
                assert answer.headers["Upload-Offset"] == str(length)

            # the stalled connection is answered (its prefix acknowledged) or closed
            ended = stalled.response(timeout=3)
            if ended is not None:
                assert ended.status == 204, ended
                assert ended.headers["upload-offset"] == str(half)
        assert_stored(client, location, source)


@pytest.mark.e2e
def test_head_answers_while_a_body_is_stalled(tmp_path: Path) -> None:
    """HEAD never waits for the upload's lock, even with the lock held for a long time."""
    rng = random.Random(8)
    length = 1 << 20
    source = rng.randbytes(length)
    with ServerProcess(tmp_path / "data") as server, httpx.Client(timeout=10) as client:
        location = create(client, server, length)
        with RawPatch(location, 0, length) as stalled:
            stalled.send(source[:1000])
            for _ in range(5):
                began = time.monotonic()
                answer = client.head(location, headers=TUS)
                assert time.monotonic() - began < 1.0
                assert answer.status_code == 200
                assert answer.headers["Upload-Offset"] == "0"
                time.sleep(0.05)
        finish(client, location, source)
        assert_stored(client, location, source)


@pytest.mark.e2e
def test_a_delete_takes_over_a_stalled_patch_at_once(server: ServerProcess) -> None:
    rng = random.Random(9)
    length = 1 << 20
    source = rng.randbytes(length)
    with httpx.Client(timeout=10) as client:
        location = create(client, server, length)
        with RawPatch(location, 0, length) as stalled:
            stalled.send(source[: length // 2])
            time.sleep(0.3)
            began = time.monotonic()
            deleted = client.delete(location, headers=TUS)
            took = time.monotonic() - began
            assert took < 3.0, f"DELETE waited {took:.1f}s for the stalled PATCH"
            assert deleted.status_code == 204, (deleted.status_code, deleted.text)
            stalled.response(timeout=3)  # answered or closed, either way not left hanging
        gone = client.head(location, headers=TUS)
        assert gone.status_code in (404, 410)
        assert client.get(location).status_code in (404, 410)
