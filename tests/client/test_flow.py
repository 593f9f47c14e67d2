"""The sans-I/O flows, driven by hand with fake answers: no sockets, no files."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from chunkd.client import FileChanged, RetriesExhausted, RetryPolicy, ServerRefused
from chunkd.client._effects import (
    Checkpoint,
    FileDigest,
    Flow,
    Parallel,
    Progressed,
    Request,
    Response,
    Session,
    Sleep,
    TransportFailure,
)
from chunkd.client._flow import UploadPlan, rest_flow, tus_flow

BASE = "http://chunkd.test"
SHA = "ab" * 32
PLAN = UploadPlan(BASE, "f.bin", 250, part_size=100, parallel=2, retry=RetryPolicy(3, 0.01))
SESSION = Session("rest", "u1", f"{BASE}/uploads/u1", f"{BASE}/uploads/u1/parts/{{n}}",
                  f"{BASE}/uploads/u1/complete", 100)  # fmt: skip
Answer = Response | TransportFailure


def ok(status: int, body: Any = None, **headers: str) -> Response:
    return Response(status, headers, json.dumps(body).encode() if body is not None else b"")


def error(status: int, code: str, **details: Any) -> Response:
    body = {"error": {"code": code, "message": f"{code} happened", "hint": "do X",
                      "retryable": False, "details": details}}  # fmt: skip
    return ok(status, body)


def status(state: str = "complete", missing: list[list[int]] | None = None) -> dict[str, Any]:
    return {
        "state": state, "bytes_received": 100, "parts_received": 1,
        "missing_parts": missing or [], "digests": {"sha256": SHA}, "location": "L",
    }  # fmt: skip


CREATED = {"id": "u1", "part_size": 100, "part_count": 3, "expires_at": None,
           "urls": {"self": SESSION.url, "parts": SESSION.parts_url,
                    "complete": SESSION.complete_url, "download": "D"}}  # fmt: skip


class Driver:
    """Answers requests with ``answer`` and records every effect; runs Parallel in order;
    the file's sha256 is ``SHA``."""

    def __init__(self, answer: Callable[[Request], Answer]) -> None:
        self.answer = answer
        self.effects: list[object] = []

    def run(self, flow: Flow[Any]) -> Any:
        reply: Any = None
        while True:
            try:
                effect = flow.send(reply)
            except StopIteration as done:
                return done.value
            self.effects.append(effect)
            if isinstance(effect, Request):
                reply = self.answer(effect)
            elif isinstance(effect, Parallel):
                reply = [self.run(sub) for sub in effect.flows]
            elif isinstance(effect, FileDigest):
                reply = SHA
            else:
                reply = None

    def requests(self) -> list[str]:
        return [f"{e.method} {e.url}" for e in self.effects if isinstance(e, Request)]

    def parts(self) -> list[str]:
        return [r.rsplit("/", 1)[1] for r in self.requests() if r.startswith("PUT")]


def rest_server(complete: list[Answer] | None = None) -> Callable[[Request], Answer]:
    answers = list(complete or [])

    def answer(request: Request) -> Answer:
        if request.method == "POST" and request.url.endswith("/uploads"):
            return ok(201, CREATED)
        if request.method == "PUT":
            return ok(201, {})
        if request.url.endswith("/complete"):
            return answers.pop(0) if answers else ok(200, status())
        return ok(200, status())

    return answer


def test_a_new_upload_creates_a_session_sends_every_part_and_completes() -> None:
    driver = Driver(rest_server())
    result = driver.run(rest_flow(PLAN))
    created = next(e for e in driver.effects if isinstance(e, Request))
    assert created.json == {"filename": "f.bin", "size": 250, "part_size": 100, "metadata": {}}
    assert driver.parts() == ["0", "1", "2"]
    assert [e for e in driver.effects if isinstance(e, Checkpoint)] == [Checkpoint(SESSION)]
    puts = [e for e in driver.effects if isinstance(e, Request) and e.method == "PUT"]
    assert [(p.body.offset, p.body.length) for p in puts if p.body] == [(0, 100), (100, 100),
                                                                        (200, 50)]  # fmt: skip
    assert all(p.body and p.body.digest == "content-digest" for p in puts)
    assert result.parts_sent == 3 and not result.resumed and result.location == "L"
    assert result.sha256 == SHA
    completed = [e for e in driver.effects if isinstance(e, Request) and e.method == "POST"][-1]
    assert completed.url.endswith("/complete") and completed.json == {"sha256": SHA}
    # the whole-file digest is asked for once every part is sent, not before the first
    first_digest = next(i for i, e in enumerate(driver.effects) if isinstance(e, FileDigest))
    last_put = max(i for i, e in enumerate(driver.effects)
                   if isinstance(e, Request) and e.method == "PUT")  # fmt: skip
    assert first_digest > last_put
    assert sum(e.bytes for e in driver.effects if isinstance(e, Progressed)) == 250


def test_a_resumed_upload_sends_only_the_missing_parts() -> None:
    def answer(request: Request) -> Answer:
        if request.method == "GET":
            return ok(200, status("receiving", [[1, 1]]))
        return rest_server()(request)

    driver = Driver(answer)
    result = driver.run(rest_flow(PLAN, SESSION))
    assert driver.parts() == ["1"]
    assert result.resumed and result.parts_sent == 1
    assert not any(r.startswith("POST") and r.endswith("/uploads") for r in driver.requests())


@pytest.mark.parametrize("gone", [ok(404, {}), ok(200, status("expired"))])
def test_a_session_the_server_lost_starts_over(gone: Response) -> None:
    def answer(request: Request) -> Answer:
        return gone if request.method == "GET" else rest_server()(request)

    driver = Driver(answer)
    result = driver.run(rest_flow(PLAN, SESSION))
    assert driver.parts() == ["0", "1", "2"] and not result.resumed


def test_network_failures_and_retryable_answers_are_retried_honouring_retry_after() -> None:
    failures: list[Answer] = [TransportFailure("reset"), ok(503, {}, **{"retry-after": "7"})]

    def answer(request: Request) -> Answer:
        if request.method == "PUT" and request.url.endswith("/1") and failures:
            return failures.pop(0)
        return rest_server()(request)

    driver = Driver(answer)
    driver.run(rest_flow(PLAN))
    sleeps = [e.seconds for e in driver.effects if isinstance(e, Sleep)]
    assert len(sleeps) == 2 and sleeps[0] <= 0.01 and 7 <= sleeps[1] <= 7.01
    assert driver.parts() == ["0", "1", "1", "1", "2"]


def test_the_retry_budget_runs_out_with_the_last_reason() -> None:
    driver = Driver(lambda request: TransportFailure("connection refused"))
    with pytest.raises(RetriesExhausted, match="connection refused") as caught:
        driver.run(rest_flow(PLAN))
    assert caught.value.attempts == 3 and caught.value.unreachable


def test_a_non_retryable_answer_stops_with_code_message_and_hint() -> None:
    driver = Driver(lambda request: error(413, "TOO_LARGE"))
    with pytest.raises(ServerRefused, match=r"TOO_LARGE \(HTTP 413\): TOO_LARGE happened — do X"):
        driver.run(rest_flow(PLAN))
    assert len(driver.requests()) == 1


def test_missing_parts_at_completion_are_sent_again() -> None:
    driver = Driver(rest_server([error(409, "MISSING_PARTS", missing_parts=[[2, 2]])]))
    driver.run(rest_flow(PLAN))
    assert driver.parts() == ["0", "1", "2", "2"]


def test_verifying_is_polled_until_complete() -> None:
    polls = [ok(200, status("verifying")), ok(200, status())]

    server = rest_server([ok(200, status("verifying"))])

    def answer(request: Request) -> Answer:
        return polls.pop(0) if request.method == "GET" else server(request)

    driver = Driver(answer)
    driver.run(rest_flow(PLAN))
    assert sum(isinstance(e, Sleep) for e in driver.effects) == 2


def test_a_part_conflict_or_another_digest_means_the_file_changed() -> None:
    conflict = Driver(
        lambda r: error(409, "PART_CONFLICT") if r.method == "PUT" else rest_server()(r)
    )
    with pytest.raises(FileChanged, match="part 0"):
        conflict.run(rest_flow(PLAN))
    garbled = Driver(
        lambda r: error(400, "PART_CHECKSUM_MISMATCH") if r.method == "PUT" else rest_server()(r)
    )
    with pytest.raises(FileChanged, match="changed while it was sent"):
        garbled.run(rest_flow(PLAN))
    refused = Driver(rest_server([error(422, "DIGEST_MISMATCH")]))
    with pytest.raises(FileChanged, match="DIGEST_MISMATCH"):
        refused.run(rest_flow(PLAN))
    other = {**status(), "digests": {"sha256": "cd" * 32}}
    mismatch = Driver(rest_server([ok(200, other)]))
    with pytest.raises(FileChanged, match="sha256"):
        mismatch.run(rest_flow(PLAN))


def test_tus_patches_part_sized_requests_and_asks_head_after_a_failure() -> None:
    state = {"offset": 0, "cut": True}

    def answer(request: Request) -> Answer:
        if request.method == "POST":
            return ok(201, None, location="/files/t1")
        if request.method == "HEAD":
            return ok(200, None, **{"upload-offset": str(state["offset"])})
        assert request.body is not None and request.body.digest == "upload-checksum"
        assert request.headers["Upload-Offset"] == str(request.body.offset)
        if state["cut"] and request.body.offset == 100:
            state["cut"], state["offset"] = False, 130  # the server kept a prefix of the body
            return TransportFailure("cut")
        state["offset"] = request.body.offset + request.body.length
        return ok(204, None, **{"upload-offset": str(state["offset"])})

    driver = Driver(answer)
    result = driver.run(tus_flow(replace(PLAN, largest_patch=100)))
    spans = [(e.body.offset, e.body.length) for e in driver.effects
             if isinstance(e, Request) and e.body]  # fmt: skip
    assert spans == [(0, 100), (100, 100), (130, 70), (200, 50)]
    assert result.id == "t1" and result.location == f"{BASE}/files/t1"


def tus_server(cuts: set[int]) -> tuple[Callable[[Request], Answer], list[tuple[int, int]]]:
    """A tus server that drops the PATCHes starting at ``cuts`` (once each), keeping nothing
    of them; returns it and the spans it was sent."""
    state = {"offset": 0}
    spans: list[tuple[int, int]] = []

    def answer(request: Request) -> Answer:
        if request.method == "POST":
            return ok(201, None, location="/files/t1")
        if request.method == "HEAD":
            return ok(200, None, **{"upload-offset": str(state["offset"])})
        assert request.body is not None
        spans.append((request.body.offset, request.body.length))
        if request.body.offset in cuts:
            cuts.discard(request.body.offset)
            return TransportFailure("cut")
        state["offset"] = request.body.offset + request.body.length
        return ok(204, None, **{"upload-offset": str(state["offset"])})

    return answer, spans


def test_a_grown_patch_refused_as_too_large_shrinks_and_goes_on() -> None:
    # a proxy on the way takes bodies of at most 250 bytes
    served, spans = tus_server(set())

    def answer(request: Request) -> Answer:
        if request.body is not None and request.body.length > 250:
            spans.append((request.body.offset, request.body.length))
            return error(413, "REQUEST_TOO_LARGE")
        return served(request)

    plan = replace(PLAN, size=1000, largest_patch=400)
    driver = Driver(answer)
    driver.run(tus_flow(plan))
    assert spans == [(0, 100), (100, 200), (300, 400), (300, 100), (400, 200), (600, 200),
                     (800, 200)]  # fmt: skip
    assert not any(isinstance(effect, Sleep) for effect in driver.effects)
    # one part that is too large is refused as before: nothing smaller to try
    small = replace(PLAN, size=1000, part_size=300, largest_patch=400)
    with pytest.raises(ServerRefused, match="REQUEST_TOO_LARGE"):
        Driver(answer).run(tus_flow(small))


@pytest.mark.parametrize(
    ("size", "largest", "cuts", "expected"),
    [
        # doubling from one part to the largest PATCH, in whole parts
        (1000, 400, set(), [(0, 100), (100, 200), (300, 400), (700, 300)]),
        # the largest is rounded down to whole parts; never below one part
        (600, 250, set(), [(0, 100), (100, 200), (300, 200), (500, 100)]),
        (300, 10, set(), [(0, 100), (100, 100), (200, 100)]),
        # after a cut: one part again, growing to half the span that failed at most
        (1500, 400, {300}, [(0, 100), (100, 200), (300, 400), (300, 100), (400, 200),
                            (600, 200), (800, 200), (1000, 200), (1200, 200), (1400, 100)]),
        # a link that keeps failing goes back to one part at a time
        (700, 400, {100, 200}, [(0, 100), (100, 200), (100, 100), (200, 100), (200, 100),
                                (300, 100), (400, 100), (500, 100), (600, 100)]),
    ],
)  # fmt: skip
def test_tus_patches_grow_while_they_succeed_and_shrink_after_a_failure(
    size: int, largest: int, cuts: set[int], expected: list[tuple[int, int]]
) -> None:
    answer, spans = tus_server(cuts)
    plan = replace(PLAN, size=size, largest_patch=largest)
    result = Driver(answer).run(tus_flow(plan))
    assert spans == expected
    assert result.parts_sent == len(expected)
