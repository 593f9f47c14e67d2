"""The REST API against its own ``/openapi.json``, with schemathesis, on the real server process.

Every generated request (valid and deliberately invalid) must get an answer that is not a 5xx,
whose status code is documented for the operation, whose Content-Type is documented, and whose
body matches the documented schema. Runs are deterministic (derandomized Hypothesis, no example
database) and bounded (a fixed number of examples per operation and mode).

Generated upload ids almost never name an upload, so each operation taking ``upload_id`` also
runs against a fresh live session, to reach the code behind the 404.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any
from unittest import mock

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import CheckFunction
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from chunkd.server.app import create_app
from chunkd.settings import load_settings
from chunkd.testing.processes import free_port
from chunkd.testing.server import ServerProcess

CHECKS: list[CheckFunction] = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

# Per operation and generation mode; with the live-session variant this keeps the module
# well under a minute on two cores.
EXAMPLES = 60

BOUNDED = settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the same examples every run: a failure here is reproducible
    database=None,  # no .hypothesis/ example database to make runs differ
    deadline=None,  # a real server on a busy 2-core machine; response time is not under test
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

# The schema is needed when pytest collects, before any server runs: take it from the
# application in-process, point the requests at a server started later on a port chosen now, and
# check (test_the_served_schema_is_the_one_tested) that the server serves that same document.
# (schemathesis.pytest.from_fixture would load it from the server instead, but it reads
# pytest's private Node._nodeid, which pytest 9.2 no longer has.)
PORT = free_port()


def _document() -> dict[str, Any]:
    # the settings ServerProcess gives the server: defaults, no inherited CHUNKD_* variables
    env = {name: value for name, value in os.environ.items() if not name.startswith("CHUNKD_")}
    with mock.patch.dict(os.environ, env, clear=True):
        return create_app(load_settings()).openapi()


DOCUMENT = _document()

schema = schemathesis.openapi.from_dict(DOCUMENT, config=schemathesis.Config())
schema.config.update(base_url=f"http://127.0.0.1:{PORT}", request_timeout=10)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], deterministic=True
)


@pytest.fixture(scope="module")
def rest_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("schemathesis") / "data"
    # Rate limits off: thousands of requests from one address would otherwise mostly get 429
    # (documented and conforming, but it would leave the code behind it untested).
    limits = {"CHUNKD_RATE_LIMIT": "0", "CHUNKD_RATE_LIMIT_PER_ADDRESS": "0"}
    with ServerProcess(data, "--max-size", "1MiB", port=PORT, env=limits) as server:
        yield server


@pytest.fixture(scope="module")
def http(rest_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=rest_server.url, timeout=10) as client:
        yield client


@pytest.mark.e2e
@schema.parametrize()
@BOUNDED
def test_every_answer_conforms(case: schemathesis.Case[Any], rest_server: ServerProcess) -> None:
    case.call_and_validate(checks=CHECKS, timeout=10)


@pytest.mark.e2e
@schema.include(path_regex=r"\{upload_id\}").parametrize()
@BOUNDED
def test_every_answer_on_a_live_session_conforms(
    case: schemathesis.Case[Any], http: httpx.Client
) -> None:
    # one part of one byte: generated part numbers and bodies fit it now and then
    created = http.post("/uploads", json={"filename": "a", "size": 1})
    assert created.status_code == 201, created.text
    case.path_parameters["upload_id"] = created.json()["id"]
    case.call_and_validate(checks=CHECKS, timeout=10)


@pytest.mark.e2e
@pytest.mark.parametrize("form", [False, True], ids=["raw", "multipart"])
def test_an_empty_file_stored_whole_is_created(http: httpx.Client, form: bool) -> None:
    # found by this module: the empty upload is finished on creation, and appending its (empty)
    # body to it then answered 409 UPLOAD_NOT_RECEIVING, leaving a completed upload behind
    if form:
        answer = http.post("/uploads?complete=true", files={"file": ("empty", b"")})
    else:
        answer = http.post(
            "/uploads?complete=true",
            content=b"",
            headers={"Content-Type": "application/octet-stream"},
        )
    assert answer.status_code == 201, answer.text
    status = answer.json()
    assert (status["state"], status["size"]) == ("complete", 0)
    assert status["digests"]["sha256"] == hashlib.sha256(b"").hexdigest()
    assert http.get(status["location"]).content == b""


@pytest.mark.e2e
def test_the_served_schema_is_the_one_tested(http: httpx.Client) -> None:
    served = http.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == DOCUMENT


def test_the_schema_has_no_dangling_references() -> None:
    # found by this module: the JSON body of POST /uploads referred to a CreateSession schema
    # missing from components, so no generator or client could know the request's shape
    document = DOCUMENT
    components = set(document["components"]["schemas"])
    found = [ref.rsplit("/", 1)[1] for ref in _refs(document)]
    assert found and set(found) <= components, set(found) - components


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)
