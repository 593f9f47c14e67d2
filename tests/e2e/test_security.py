"""Attacks on the real server process: other owners' uploads, forged and broken credentials,
tampered signed URLs, path traversal, every limit crossed, disallowed and infected content.

Each attack is shown to get its documented answer (status, and the error code on REST), to
leave the server serving (health, and a normal upload afterwards), and to leave a bystander
alone: two uploads made first by another owner (one half received, one complete) keep their
offset, their bytes and their sha256.

One server per configuration, module-scoped: ``auth`` (HS256 with audience and issuer),
``rsa`` (an RSA public key), ``limits`` (max size, quotas, minimum rate, idle timeout),
``rates`` (request rates), ``audio`` (allow-list ``audio`` and clamd) and ``scan`` (clamd).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import socket
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx
import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning

from chunkd.testing.clamd import ClamdProcess, eicar, running_clamd
from chunkd.testing.server import ServerProcess
from tests.auth.keys import SECRET, bearer, rsa_keys, token
from tests.validation import samples

pytestmark = pytest.mark.e2e

TUS = {"Tus-Resumable": "1.0.0"}
PATCH = {**TUS, "Content-Type": "application/offset+octet-stream"}
AUDIENCE = "chunkd-e2e"
ISSUER = "https://issuer.chunkd.test"
OTHER_SECRET = "another-secret-that-is-also-long-enough!!"
NO_RATE_LIMITS = {"CHUNKD_RATE_LIMIT": "0", "CHUNKD_RATE_LIMIT_PER_ADDRESS": "0"}
UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
SAFE_DISPOSITION = re.compile(r"attachment; filename\*=UTF-8''[A-Za-z0-9%._~-]+")

Headers = dict[str, str]
Mint = Callable[[str], Headers]


# -- small helpers ---------------------------------------------------------------------------


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def audio(size: int) -> bytes:
    """A WAV head then random bytes: audio to the sniffer, unique to the test."""
    head = samples.wav()
    return head + os.urandom(size - len(head))


def upload_id(url: str) -> str:
    found = urlsplit(url).path.rsplit("/", 1)[1]
    assert UPLOAD_ID.fullmatch(found), url
    return found


def metadata(**values: str) -> str:
    return ",".join(f"{key} {b64(value)}" for key, value in values.items())


def error_code(answer: httpx.Response) -> str:
    code: str = answer.json()["error"]["code"]
    return code


def assert_rest_error(answer: httpx.Response, status: int, code: str) -> None:
    assert answer.status_code == status, (answer.status_code, answer.text)
    assert error_code(answer) == code, answer.text


def assert_unauthorized(answer: httpx.Response, *, rest: bool) -> None:
    assert answer.status_code == 401, (answer.request.method, answer.status_code, answer.text)
    assert answer.headers["WWW-Authenticate"].startswith("Bearer"), answer.headers
    if rest:
        assert error_code(answer) == "UNAUTHORIZED", answer.text


def tus_create(
    client: httpx.Client,
    server: ServerProcess,
    length: int,
    headers: Mapping[str, str],
    **meta: str,
) -> str:
    extra = {"Upload-Metadata": metadata(**meta)} if meta else {}
    created = client.post(
        server.files_url, headers={**TUS, **headers, **extra, "Upload-Length": str(length)}
    )
    assert created.status_code == 201, (created.status_code, created.text)
    location: str = created.headers["Location"]
    return location


def tus_patch(
    client: httpx.Client, location: str, offset: int, body: bytes, headers: Mapping[str, str]
) -> httpx.Response:
    return client.patch(
        location, content=body, headers={**PATCH, **headers, "Upload-Offset": str(offset)}
    )


def tus_offset(client: httpx.Client, location: str, headers: Mapping[str, str]) -> int:
    head = client.head(location, headers={**TUS, **headers})
    assert head.status_code == 200, head.status_code
    return int(head.headers["Upload-Offset"])


def tus_upload(
    client: httpx.Client,
    server: ServerProcess,
    data: bytes,
    headers: Mapping[str, str],
    **meta: str,
) -> str:
    """Create and send a whole file; returns its URL."""
    location = tus_create(client, server, len(data), headers, **meta)
    answer = tus_patch(client, location, 0, data, headers)
    assert answer.status_code == 204, (answer.status_code, answer.text)
    assert answer.headers["Upload-Offset"] == str(len(data))
    return location


def rest_session(
    client: httpx.Client, server: ServerProcess, headers: Mapping[str, str], **spec: Any
) -> dict[str, Any]:
    created = client.post(f"{server.url}/uploads", json=spec, headers=dict(headers))
    assert created.status_code == 201, (created.status_code, created.text)
    session: dict[str, Any] = created.json()
    return session


def rest_status(
    client: httpx.Client, server: ServerProcess, uid: str, headers: Mapping[str, str]
) -> dict[str, Any]:
    answer = client.get(f"{server.url}/uploads/{uid}", headers=dict(headers))
    assert answer.status_code == 200, (answer.status_code, answer.text)
    status: dict[str, Any] = answer.json()
    return status


def stored_path(server: ServerProcess, uid: str) -> Path:
    return server.data_dir / "files" / uid[:2] / uid


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


def raw_request(
    server: ServerProcess,
    method: str,
    target: str,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> RawAnswer:
    """One request with the request-target sent exactly as given (httpx would normalise
    ``..`` segments away before they reach the server)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, target, body=body, headers=dict(headers or {}))
        answer = connection.getresponse()
        data = answer.read()
        return RawAnswer(answer.status, {k.lower(): v for k, v in answer.getheaders()}, data)
    finally:
        connection.close()


class SlowBody:
    """A request over a plain socket whose body the test sends piece by piece, reading the
    answer whenever the server gives one (mid-body, as a server ending a slow body does)."""

    def __init__(self, server: ServerProcess, head: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        self.sock.sendall(head.encode("ascii"))
        self.received = b""

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def answer(self, timeout: float) -> RawAnswer | None:
        """The answer if it (headers and body) is complete within ``timeout``, else ``None``."""
        deadline = time.monotonic() + timeout
        while True:
            parsed = self._parse()
            if parsed is not None:
                return parsed
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                piece = self.sock.recv(65536)
            except TimeoutError:
                return None
            except ConnectionResetError:
                piece = b""
            if not piece:
                parsed = self._parse(closed=True)
                assert parsed is not None, f"closed without an answer: {self.received!r}"
                return parsed
            self.received += piece

    def _parse(self, closed: bool = False) -> RawAnswer | None:
        head, found, body = self.received.partition(b"\r\n\r\n")
        if not found:
            return None
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if len(body) < length and not closed:
            return None
        return RawAnswer(int(status_line.split()[1]), headers, body[:length])

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> SlowBody:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def request_head(
    server: ServerProcess, method: str, path: str, length: int, headers: Mapping[str, str]
) -> str:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {length}")
    return "\r\n".join(lines) + "\r\n\r\n"


# -- the bystander and the deployments -------------------------------------------------------


@dataclass
class Bystander:
    """Two uploads of another owner, made before any attack: half of one file, all of one."""

    server: ServerProcess
    headers: Headers
    partial_url: str
    partial_sent: bytes = field(repr=False)
    complete_url: str
    complete_bytes: bytes = field(repr=False)

    @classmethod
    def create(cls, client: httpx.Client, server: ServerProcess, headers: Headers) -> Bystander:
        source = audio(64_000)
        partial = tus_create(client, server, len(source), headers, filename="keep.wav")
        sent = source[:8192]
        answer = tus_patch(client, partial, 0, sent, headers)
        assert answer.status_code == 204, answer.text
        complete_bytes = audio(40_000)
        complete = tus_upload(client, server, complete_bytes, headers, filename="keep-all.wav")
        return cls(server, headers, partial, sent, complete, complete_bytes)

    @property
    def ids(self) -> tuple[str, str]:
        return upload_id(self.partial_url), upload_id(self.complete_url)

    def check(self, client: httpx.Client) -> None:
        """Unchanged: offset, bytes on disk and, for the complete one, download and sha256."""
        assert tus_offset(client, self.partial_url, self.headers) == len(self.partial_sent)
        partial_id, complete_id = self.ids
        assert stored_path(self.server, partial_id).read_bytes() == self.partial_sent
        got = client.get(self.complete_url, headers=self.headers)
        assert got.status_code == 200, got.status_code
        assert got.content == self.complete_bytes
        assert got.headers["ETag"] == f'"{sha256(self.complete_bytes)}"'
        assert sha256(stored_path(self.server, complete_id).read_bytes()) == sha256(
            self.complete_bytes
        )


@dataclass
class Deployment:
    server: ServerProcess
    root: Path  # holds the data directory and the server's log, nothing else
    mint: Mint  # headers authenticating an owner
    bystander: Bystander

    @property
    def url(self) -> str:
        return self.server.url


def hs256(sub: str) -> Headers:
    return bearer(token(sub))


def hs256_aud_iss(sub: str) -> Headers:
    return bearer(token(sub, aud=AUDIENCE, iss=ISSUER))


@contextmanager
def deploy(
    factory: pytest.TempPathFactory,
    name: str,
    mint: Mint,
    *args: str,
    env: Mapping[str, str],
) -> Iterator[Deployment]:
    root = factory.mktemp(name)
    with ServerProcess(root / "data", *args, env=env) as server:
        with httpx.Client(timeout=10) as client:
            bystander = Bystander.create(client, server, mint("bystander"))
        yield Deployment(server, root, mint, bystander)


def assert_tree_clean(deployment: Deployment) -> None:
    """The data directory holds the catalog and one file per upload under files/<xx>/, and
    nothing else was made beside it."""
    data = deployment.server.data_dir
    assert sorted(p.name for p in deployment.root.iterdir()) == sorted(
        ["data", deployment.server.log_path.name]
    )
    for path in data.rglob("*"):
        relative = path.relative_to(data).parts
        if relative[0] != "files":
            assert len(relative) == 1 and re.fullmatch(
                r"catalog\.sqlite3(-wal|-shm|-journal)?", relative[0]
            ), path
            assert path.is_file() and not path.is_symlink(), path
            continue
        assert not path.is_symlink(), path
        if len(relative) == 1:
            assert path.is_dir(), path
        elif len(relative) == 2:
            assert path.is_dir() and re.fullmatch(r"[0-9a-f]{2}", relative[1]), path
        else:
            assert len(relative) == 3 and path.is_file(), path
            assert UPLOAD_ID.fullmatch(relative[2]) and relative[2][:2] == relative[1], path


def assert_still_serving(
    deployment: Deployment, client: httpx.Client, owner: str | None = None
) -> None:
    """Health answers, a fresh owner uploads a file normally, the bystander is untouched."""
    server = deployment.server
    assert client.get(f"{server.url}/healthz").status_code == 200
    headers = deployment.mint(owner or f"checker-{secrets.token_hex(4)}")
    data = audio(20_000)
    location = tus_upload(client, server, data, headers, filename="normal.wav")
    got = client.get(location, headers=headers)
    assert got.status_code == 200 and got.content == data
    deployment.bystander.check(client)
    assert_tree_clean(deployment)


def data_files(deployment: Deployment) -> set[Path]:
    return {p for p in (deployment.server.data_dir / "files").rglob("*") if p.is_file()}


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    env = {
        "CHUNKD_JWT_SECRET": SECRET,
        "CHUNKD_JWT_AUDIENCE": AUDIENCE,
        "CHUNKD_JWT_ISSUER": ISSUER,
        "CHUNKD_MAX_SIZE": "1MiB",
        **NO_RATE_LIMITS,
    }
    with deploy(tmp_path_factory, "auth", hs256_aud_iss, env=env) as deployment:
        yield deployment


@dataclass
class RsaDeployment:
    deployment: Deployment
    public_pem: bytes
    private_key: Any


@pytest.fixture(scope="module")
def rsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RsaDeployment]:
    private, public_pem = rsa_keys()
    key_file = tmp_path_factory.mktemp("keys") / "public.pem"
    key_file.write_bytes(public_pem)

    def mint(sub: str) -> Headers:
        return bearer(token(sub, key=private, algorithm="RS256"))

    args = ("--jwt-public-key", str(key_file))
    with deploy(tmp_path_factory, "rsa", mint, *args, env=NO_RATE_LIMITS) as deployment:
        yield RsaDeployment(deployment, public_pem, private)


MAX_SIZE = 1024 * 1024
MAX_OPEN = 3
MAX_IN_FLIGHT = 200_000
MAX_STORED = 300_000
IDLE = 1.0


@pytest.fixture(scope="module")
def limits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    env = {
        "CHUNKD_JWT_SECRET": SECRET,
        "CHUNKD_MAX_SIZE": "1MiB",
        "CHUNKD_MAX_OPEN_UPLOADS": str(MAX_OPEN),
        "CHUNKD_MAX_BYTES_IN_FLIGHT": str(MAX_IN_FLIGHT),
        "CHUNKD_MAX_BYTES_STORED": str(MAX_STORED),
        "CHUNKD_MIN_RATE": "1KiB",
        "CHUNKD_MIN_RATE_WINDOW": "1s",
        "CHUNKD_IDLE_TIMEOUT": f"{IDLE}s",
        **NO_RATE_LIMITS,
    }
    with deploy(tmp_path_factory, "limits", hs256, env=env) as deployment:
        yield deployment


PER_OWNER = 10
PER_ADDRESS = 30


@pytest.fixture(scope="module")
def rates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    env = {
        "CHUNKD_JWT_SECRET": SECRET,
        "CHUNKD_RATE_LIMIT": f"{PER_OWNER}/minute",
        "CHUNKD_RATE_LIMIT_PER_ADDRESS": f"{PER_ADDRESS}/minute",
    }
    with deploy(tmp_path_factory, "rates", hs256, env=env) as deployment:
        yield deployment


@pytest.fixture(scope="module")
def clamd() -> Iterator[ClamdProcess]:
    with running_clamd() as process:
        yield process


@pytest.fixture(scope="module")
def audio_only(
    tmp_path_factory: pytest.TempPathFactory, clamd: ClamdProcess
) -> Iterator[Deployment]:
    env = {
        "CHUNKD_JWT_SECRET": SECRET,
        "CHUNKD_ALLOWED_TYPES": "audio",
        "CHUNKD_CLAMD": clamd.socket_path,
        **NO_RATE_LIMITS,
    }
    with deploy(tmp_path_factory, "audio", hs256, env=env) as deployment:
        yield deployment


@pytest.fixture(scope="module")
def scan(tmp_path_factory: pytest.TempPathFactory, clamd: ClamdProcess) -> Iterator[Deployment]:
    env = {"CHUNKD_JWT_SECRET": SECRET, "CHUNKD_CLAMD": clamd.socket_path, **NO_RATE_LIMITS}
    with deploy(tmp_path_factory, "scan", hs256, env=env) as deployment:
        yield deployment


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


# -- another owner's upload ------------------------------------------------------------------


def assert_like_unknown(
    answer: httpx.Response, unknown: httpx.Response, real_id: str, fake_id: str
) -> None:
    """Byte for byte the answer an unknown id gets (the id in the message aside)."""
    what = (answer.request.method, answer.request.url.path)
    assert answer.status_code == 404, (*what, answer.status_code, answer.text)
    assert unknown.status_code == 404, (*what, unknown.status_code)
    assert answer.content.replace(real_id.encode(), fake_id.encode()) == unknown.content, what
    ignore = {"date", "x-request-id"}
    mine = {k: v for k, v in answer.headers.items() if k not in ignore}
    theirs = {k: v for k, v in unknown.headers.items() if k not in ignore}
    assert mine == theirs, what


def test_another_owners_upload_is_404_on_every_route_exactly_like_an_unknown_id(
    auth: Deployment, client: httpx.Client
) -> None:
    server, alice, bob = auth.server, auth.mint("alice"), auth.mint("bob")
    source = audio(30_000)
    tus_partial = tus_create(client, server, len(source), alice, filename="a.wav")
    assert tus_patch(client, tus_partial, 0, source[:10_000], alice).status_code == 204
    tus_complete = tus_upload(client, server, source, alice, filename="b.wav")
    part_size = 65_536  # the smallest the server allows
    first_part = audio(part_size)
    session = rest_session(
        client, server, alice, filename="c.wav", size=2 * part_size, part_size=part_size
    )
    part = client.put(
        f"{server.url}/uploads/{session['id']}/parts/0", content=first_part, headers=alice
    )
    assert part.status_code == 201, part.text
    targets = [upload_id(tus_partial), upload_id(tus_complete), session["id"]]

    def attempts(uid: str) -> list[tuple[str, str, Headers, bytes]]:
        files, rest = f"{server.files_url}{uid}", f"{server.url}/uploads/{uid}"
        json_body = {"Content-Type": "application/json"}
        return [
            ("HEAD", files, TUS, b""),
            ("PATCH", files, {**PATCH, "Upload-Offset": "10000"}, b"x" * 100),
            ("PATCH", files, {**PATCH, "Upload-Offset": "0"}, b"x" * 100),
            ("GET", files, {}, b""),
            ("DELETE", files, TUS, b""),
            ("GET", rest, {}, b""),
            ("PUT", f"{rest}/parts/1", {}, b"x" * 65_536),
            ("PUT", f"{rest}/parts/0", {}, b"x" * 65_536),
            ("POST", f"{rest}/complete", {}, b""),
            ("DELETE", rest, {}, b""),
            ("POST", f"{rest}/signed-url", json_body, b"{}"),
        ]

    for real in targets:
        fake = secrets.token_hex(16)
        for (method, url, headers, body), (_, unknown_url, _, _) in zip(
            attempts(real), attempts(fake), strict=True
        ):
            answer = client.request(method, url, headers={**headers, **bob}, content=body)
            unknown = client.request(method, unknown_url, headers={**headers, **bob}, content=body)
            assert_like_unknown(answer, unknown, real, fake)

    # Alice's uploads did not move
    assert tus_offset(client, tus_partial, alice) == 10_000
    assert stored_path(server, upload_id(tus_partial)).read_bytes() == source[:10_000]
    got = client.get(tus_complete, headers=alice)
    assert got.content == source and got.headers["ETag"] == f'"{sha256(source)}"'
    status = rest_status(client, server, session["id"], alice)
    assert (status["state"], status["parts_received"]) == ("receiving", 1)
    assert status["missing_parts"] == [[1, 1]]
    assert stored_path(server, session["id"]).read_bytes()[:part_size] == first_part
    assert_still_serving(auth, client)


# -- credentials -----------------------------------------------------------------------------


def forged(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    """A JWT assembled by hand (PyJWT refuses to make these): HS256 over ``key``, or no
    signature at all when ``key`` is None."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    if key is None:
        return f"{signing_input}."
    mac = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def claims_for(sub: str, **more: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub, "scope": "upload", "iat": now, "exp": now + 600, **more}


def assert_refused_everywhere(
    deployment: Deployment, client: httpx.Client, label: str, headers: Headers
) -> None:
    """401 with WWW-Authenticate on both protocols, on creation and on an existing upload
    (the bystander's: 401, not 404, so nothing is learned about it); nothing created."""
    server, bystander = deployment.server, deployment.bystander
    partial_id, _ = bystander.ids
    before = data_files(deployment)
    answers = [
        (client.post(server.files_url, headers={**TUS, **headers, "Upload-Length": "10"}), False),
        (client.head(bystander.partial_url, headers={**TUS, **headers}), False),
        (tus_patch(client, bystander.partial_url, 8192, b"evil", headers), False),
        (client.delete(bystander.partial_url, headers={**TUS, **headers}), False),
        (client.get(bystander.complete_url, headers=headers), False),
        (
            client.post(
                f"{server.url}/uploads", json={"filename": "a", "size": 1}, headers=headers
            ),
            True,
        ),
        (client.get(f"{server.url}/uploads/{partial_id}", headers=headers), True),
        (client.delete(f"{server.url}/uploads/{partial_id}", headers=headers), True),
        (client.post(f"{server.url}/signed-urls", json={"max_size": 10}, headers=headers), True),
    ]
    for answer, rest in answers:
        try:
            assert_unauthorized(answer, rest=rest)
        except AssertionError as error:
            raise AssertionError(f"{label}: {error}") from None
    assert data_files(deployment) == before, label


def test_missing_malformed_and_invalid_tokens_are_401(
    auth: Deployment, client: httpx.Client
) -> None:
    now = int(time.time())
    valid = token("mallory", aud=AUDIENCE, iss=ISSUER)
    header, payload, signature = valid.split(".")
    edited = json.loads(unb64url(payload))
    edited["sub"] = "bystander"  # impersonation by editing the payload
    cases: list[tuple[str, Headers]] = [
        ("no token", {}),
        ("basic", {"Authorization": "Basic " + b64("bystander:password")}),
        ("bearer without token", {"Authorization": "Bearer"}),
        ("garbage", {"Authorization": "Bearer not-a-jwt-at-all"}),
        ("three garbage parts", {"Authorization": "Bearer a.b.c"}),
        ("token without scheme", {"Authorization": valid}),
        ("expired", bearer(token("mallory", aud=AUDIENCE, iss=ISSUER, ttl=-120))),
        ("not yet valid", bearer(token("mallory", aud=AUDIENCE, iss=ISSUER, nbf=now + 3600))),
        ("wrong audience", bearer(token("mallory", aud="someone-else", iss=ISSUER))),
        ("no audience", bearer(token("mallory", iss=ISSUER))),
        ("wrong issuer", bearer(token("mallory", aud=AUDIENCE, iss="https://evil.test"))),
        (
            "no expiry",
            bearer(
                jwt.encode(
                    {"sub": "mallory", "scope": "upload", "aud": AUDIENCE, "iss": ISSUER}, SECRET
                )
            ),
        ),
        (
            "no subject",
            bearer(
                jwt.encode(
                    {"scope": "upload", "aud": AUDIENCE, "iss": ISSUER, "exp": now + 600}, SECRET
                )
            ),
        ),
        ("another secret", bearer(token("mallory", key=OTHER_SECRET, aud=AUDIENCE, iss=ISSUER))),
        ("edited payload", bearer(f"{header}.{b64url(json.dumps(edited).encode())}.{signature}")),
    ]
    claims = claims_for("bystander", aud=AUDIENCE, iss=ISSUER)
    for alg in ("none", "None", "NONE"):
        cases.append((f"alg {alg}", bearer(forged({"alg": alg, "typ": "JWT"}, claims, None))))
    with warnings.catch_warnings():  # the server's own secret is too short for HS512
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        hs512 = jwt.encode(claims, SECRET, algorithm="HS512")
    cases.append(("HS512 with the secret", bearer(hs512)))
    for label, headers in cases:
        assert_refused_everywhere(auth, client, label, headers)
    # the control: the same requests with a good token are served
    created = client.post(
        server_files(auth), headers={**TUS, **auth.mint("mallory"), "Upload-Length": "10"}
    )
    assert created.status_code == 201
    assert_still_serving(auth, client)


def server_files(deployment: Deployment) -> str:
    return deployment.server.files_url


def test_hs_rs_confusion_and_foreign_keys_are_401(rsa: RsaDeployment, client: httpx.Client) -> None:
    deployment = rsa.deployment
    claims = claims_for("bystander")
    other_private, _ = rsa_keys()
    cases: list[tuple[str, Headers]] = [
        # HS256 "signed" with the server's own public key as the HMAC secret
        (
            "HS256 over the public PEM",
            bearer(forged({"alg": "HS256", "typ": "JWT"}, claims, rsa.public_pem)),
        ),
        (
            "HS256 over the PEM, stripped",
            bearer(forged({"alg": "HS256", "typ": "JWT"}, claims, rsa.public_pem.strip())),
        ),
        ("alg none", bearer(forged({"alg": "none", "typ": "JWT"}, claims, None))),
        ("RS256 by another key", bearer(token("bystander", key=other_private, algorithm="RS256"))),
        ("HS256 with the test secret", bearer(token("bystander"))),
        (
            "expired RS256",
            bearer(token("bystander", key=rsa.private_key, algorithm="RS256", ttl=-120)),
        ),
    ]
    for label, headers in cases:
        assert_refused_everywhere(deployment, client, label, headers)
    assert_still_serving(deployment, client)  # a real RS256 token is served


# -- signed URLs -----------------------------------------------------------------------------


def signature_of(url: str) -> str:
    sig: str = parse_qs(urlsplit(url).query)["sig"][0]
    return sig


def with_sig(base: str, sig: str) -> str:
    return f"{base}?sig={quote(sig, safe='.')}"


def edit_payload(sig: str, **changes: Any) -> str:
    payload, _, mac = sig.partition(".")
    claims = json.loads(unb64url(payload))
    claims.update(changes)
    edited = b64url(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    return f"{edited}.{mac}"


def test_tampered_expired_retargeted_and_reused_signed_urls_are_refused(
    auth: Deployment, client: httpx.Client
) -> None:
    server, alice = auth.server, auth.mint("alice")
    partial_id, complete_id = auth.bystander.ids
    # minted first, checked last: these expire in 1 s
    mine = tus_create(client, server, 100, alice, filename="mine.bin")
    mine_id = upload_id(mine)
    short = client.post(
        f"{server.url}/uploads/{mine_id}/signed-url", json={"expires_in": 1}, headers=alice
    )
    assert short.status_code == 201, short.text
    short_create = client.post(
        f"{server.url}/signed-urls", json={"max_size": 100, "expires_in": 1}, headers=alice
    )
    assert short_create.status_code == 201, short_create.text
    expiry = max(short.json()["expires_at"], short_create.json()["expires_at"])

    minted = client.post(f"{server.url}/uploads/{mine_id}/signed-url", json={}, headers=alice)
    assert minted.status_code == 201, minted.text
    sig = signature_of(minted.json()["tus"])
    assert client.head(minted.json()["tus"], headers=TUS).status_code == 200  # the control

    files = server.files_url
    payload, _, mac = sig.partition(".")
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    bad: list[tuple[str, str]] = [
        # tampered payload: re-targeted to the bystander, or a later expiry, MAC kept
        (
            "payload names the bystander",
            with_sig(f"{files}{partial_id}", edit_payload(sig, u=partial_id)),
        ),
        (
            "payload names another owner",
            with_sig(f"{files}{mine_id}", edit_payload(sig, o="bystander")),
        ),
        ("payload expires later", with_sig(f"{files}{mine_id}", edit_payload(sig, e=2**40))),
        ("tampered MAC", with_sig(f"{files}{mine_id}", f"{payload}.{flipped}")),
        ("truncated MAC", with_sig(f"{files}{mine_id}", f"{payload}.{mac[:10]}")),
        ("no MAC", with_sig(f"{files}{mine_id}", f"{payload}.")),
        ("MAC only", with_sig(f"{files}{mine_id}", f".{mac}")),
        ("garbage", with_sig(f"{files}{mine_id}", "garbage")),
        # a valid signature, re-targeted to other uploads
        ("re-targeted to the bystander", with_sig(f"{files}{partial_id}", sig)),
        ("re-targeted to the complete bystander", with_sig(f"{files}{complete_id}", sig)),
        ("an upload URL used to create", with_sig(files, sig)),
    ]
    for label, url in bad:
        if urlsplit(url).path == "/files/":  # the collection: only creation is a route there
            created = client.post(url, headers={**TUS, "Upload-Length": "10"})
            assert created.status_code == 401, (label, created.status_code)
            continue
        for answer in (
            client.head(url, headers=TUS),
            client.patch(url, content=b"evil", headers={**PATCH, "Upload-Offset": "0"}),
            client.delete(url, headers=TUS),
        ):
            assert answer.status_code == 401, (label, answer.request.method, answer.status_code)
            assert answer.headers["WWW-Authenticate"].startswith("Bearer"), label
        rest_url = url.replace("/files/", "/uploads/")
        assert_unauthorized(client.get(rest_url), rest=True)
        assert_unauthorized(client.delete(rest_url), rest=True)
        target = urlsplit(rest_url)
        part_url = f"{server.url}{target.path}/parts/0?{target.query}"
        assert_unauthorized(client.put(part_url, content=b"evil"), rest=True)

    # a capability cannot mint capabilities
    assert_rest_error(
        client.post(f"{server.url}/uploads/{mine_id}/signed-url?sig={sig}", json={}),
        403,
        "FORBIDDEN",
    )

    # creation: at most max_size, once
    creation = client.post(f"{server.url}/signed-urls", json={"max_size": 100}, headers=alice)
    assert creation.status_code == 201, creation.text
    tus_url, rest_url = creation.json()["tus"], creation.json()["rest"]
    assert client.post(tus_url, headers={**TUS, "Upload-Length": "101"}).status_code == 413
    assert_rest_error(
        client.post(rest_url, json={"filename": "a", "size": 101}), 413, "UPLOAD_TOO_LARGE"
    )
    whole = client.post(
        f"{rest_url}&complete=true",
        content=b"x" * 101,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert_rest_error(whole, 413, "UPLOAD_TOO_LARGE")
    deferred = client.post(tus_url, headers={**TUS, "Upload-Defer-Length": "1"})
    assert deferred.status_code == 400
    bigger = edit_payload(signature_of(tus_url), m=10**9)
    assert (
        client.post(with_sig(files, bigger), headers={**TUS, "Upload-Length": "1000"}).status_code
        == 401
    )
    created = client.post(tus_url, headers={**TUS, "Upload-Length": "100"})
    assert created.status_code == 201, created.text
    continued = created.headers["Location"]
    assert "sig=" in continued
    over = client.patch(continued, content=b"y" * 101, headers={**PATCH, "Upload-Offset": "0"})
    assert over.status_code == 413
    again = client.post(tus_url, headers={**TUS, "Upload-Length": "10"})
    assert again.status_code == 401, again.status_code  # single use
    assert_unauthorized(client.post(rest_url, json={"filename": "a", "size": 10}), rest=True)
    # the URL handed back for the new upload does not open any other one
    new_sig = signature_of(continued)
    for other in (partial_id, mine_id):
        assert client.head(with_sig(f"{files}{other}", new_sig), headers=TUS).status_code == 401

    # expired
    time.sleep(max(0.0, int(expiry) + 1.05 - time.time()))
    expired = short.json()
    assert client.head(expired["tus"], headers=TUS).status_code == 401
    assert_unauthorized(client.get(expired["rest"]), rest=True)
    late = client.post(short_create.json()["tus"], headers={**TUS, "Upload-Length": "10"})
    assert late.status_code == 401
    assert_unauthorized(
        client.post(short_create.json()["rest"], json={"filename": "a", "size": 10}), rest=True
    )

    assert tus_offset(client, mine, alice) == 0  # no refused request wrote to it
    assert_still_serving(auth, client)


# -- path traversal --------------------------------------------------------------------------


TRAVERSAL_IDS = [
    "..",
    "%2e%2e",
    "%2E%2E",
    "..%2f..%2fcatalog.sqlite3",
    "..%2F..%2Fcatalog.sqlite3",
    "%2e%2e%2f%2e%2e%2fcatalog.sqlite3",
    "../catalog.sqlite3",
    "../../etc/passwd",
    "%2F",
    "%2fetc%2fpasswd",
    ".",
    "files",
    "a" * 10_000,
    "..%00",
    "%00",
    "0" * 31 + "%00",
]


def test_traversal_in_ids_reaches_nothing(auth: Deployment, client: httpx.Client) -> None:
    server, owner = auth.server, auth.mint("bystander")  # even the owner of every upload
    partial_id, complete_id = auth.bystander.ids
    ids = [
        *TRAVERSAL_IDS,
        partial_id.upper(),
        complete_id.upper(),
        f"{partial_id}%2f..%2f{complete_id}",
        f"{partial_id}/..",
        f"{partial_id}/",
    ]
    for uid in ids:
        files, rest = f"/files/{uid}", f"/uploads/{uid}"
        routes = [
            ("HEAD", files, TUS, None),
            ("PATCH", files, {**PATCH, "Upload-Offset": "0"}, b"evil"),
            ("GET", files, {}, None),
            ("DELETE", files, TUS, None),
            ("GET", rest, {}, None),
            ("PUT", f"{rest}/parts/0", {}, b"evil"),
            ("POST", f"{rest}/complete", {}, b""),
            ("DELETE", rest, {}, None),
            ("POST", f"{rest}/signed-url", {"Content-Type": "application/json"}, b"{}"),
        ]
        for method, target, headers, body in routes:
            answer = raw_request(server, method, target, {**headers, **owner}, body)
            what = (method, target[:80], answer.status, answer.body[:200])
            assert b"SQLite format" not in answer.body, what
            if answer.status == 307:
                # Starlette's redirect_slashes: ``/uploads/%2F`` is ``/uploads//`` and is
                # redirected to ``/uploads``; ``/uploads/<id>/`` to ``/uploads/<id>``. The
                # redirect itself touches nothing (the bystander is checked below).
                stripped = unquote(target).rstrip("/")
                assert answer.headers["location"] == f"{server.url}{stripped}", what
                assert target.startswith("/uploads/") and method in ("GET", "DELETE"), what
                continue
            assert answer.status == 404, what
            if target.startswith("/uploads/"):
                assert json.loads(answer.body)["error"]["code"] in (
                    "UPLOAD_NOT_FOUND",
                    "NOT_FOUND",
                ), what
    assert_still_serving(auth, client)


def escape_names(marker: str) -> list[str]:
    return [
        f"../../{marker}",
        f"../../../../../../../../tmp/{marker}",
        f"a/../../{marker}",
        f"/tmp/{marker}",
        f"..\\..\\{marker}",
        f"%2e%2e%2f%2e%2e%2f{marker}",
        f"files/../../{marker}",
    ]


def assert_nothing_escaped(deployment: Deployment, marker: str) -> None:
    data = deployment.server.data_dir
    bases = [Path.cwd(), deployment.root, data, data / "files", Path("/tmp"), Path("/")]
    bases += [p for p in (data / "files").iterdir() if p.is_dir()]
    for base in bases:
        for name in escape_names(marker):
            for candidate in (base / name, base / unquote(name), base / name.replace("\\", "/")):
                assert not candidate.exists(), candidate
    assert not list(Path.cwd().rglob(f"*{marker}*"))
    assert not list(deployment.root.rglob(f"*{marker}*"))


def assert_safe_download(
    client: httpx.Client, location: str, headers: Headers, name: str, data: bytes
) -> None:
    got = client.get(location, headers=headers)
    assert got.status_code == 200, (name[:60], got.status_code)
    assert got.content == data
    disposition = got.headers["Content-Disposition"]
    assert SAFE_DISPOSITION.fullmatch(disposition), disposition[:200]
    assert unquote(disposition.split("''", 1)[1]) == name  # carried whole, only encoded
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Content-Type"] == "application/octet-stream"
    assert "x-injected" not in got.headers


def test_traversal_and_control_characters_in_filenames_stay_names(
    auth: Deployment, client: httpx.Client
) -> None:
    server, owner = auth.server, auth.mint("namer")
    marker = f"chunkd-escape-{secrets.token_hex(6)}"
    passwd = Path("/etc/passwd").stat()
    names = [
        "../../etc/passwd",
        "a/../../b",
        *escape_names(marker),
        '"; filename="evil.exe',
        "x" * 900 + marker,
        "é" * 1_000,
    ]
    # tus metadata: a filename with control characters or over 1024 characters is refused,
    # the same rule as the REST routes; nothing is created
    for name in ("a\x00b.wav", "a\r\nX-Injected: 1", "\x1b[31mred\x07.wav", "tab\there",
                 "x" * 4_900 + marker):  # fmt: skip
        refused = client.post(
            server.files_url,
            headers={
                **TUS,
                **owner,
                "Upload-Length": "1",
                "Upload-Metadata": metadata(filename=name),
            },
        )
        assert refused.status_code == 400, (name[:20], refused.status_code)
    for name in names:
        data = os.urandom(100)
        location = tus_upload(client, server, data, owner, filename=name, type="text/plain")
        assert_safe_download(client, location, owner, name, data)
        head = client.head(location, headers={**TUS, **owner})
        assert head.headers["Upload-Metadata"] == metadata(filename=name, type="text/plain")

    # REST sessions: traversal is only a name; control characters and >1024 chars refused
    for name in ["../../etc/passwd", f"a/../../{marker}", f"..\\..\\{marker}"]:
        data = os.urandom(50)
        session = rest_session(client, server, owner, filename=name, size=len(data))
        put = client.put(
            f"{server.url}/uploads/{session['id']}/parts/0", content=data, headers=owner
        )
        assert put.status_code == 201, put.text
        done = client.post(f"{server.url}/uploads/{session['id']}/complete", headers=owner)
        assert done.status_code == 200 and done.json()["filename"] == name
        assert_safe_download(client, f"{server.files_url}{session['id']}", owner, name, data)
    for name in ["a\x00b", "a\r\nb", "\x1b[31m", "x" * 5_000]:
        refused = client.post(
            f"{server.url}/uploads", json={"filename": name, "size": 1}, headers=owner
        )
        assert_rest_error(refused, 422, "VALIDATION_FAILED")
    too_long = client.post(
        f"{server.url}/uploads",
        params={"complete": "true", "filename": "x" * 5_000},
        content=b"a",
        headers=owner,
    )
    assert_rest_error(too_long, 422, "VALIDATION_FAILED")
    # ?complete=true&filename=: traversal is kept as a name only; control characters are
    # refused by the JSON route, and this one may refuse them too, or keep them encoded
    for name in [f"../../{marker}", "a\x00b", "a\r\nX-Injected: 1"]:
        data = os.urandom(30)
        whole = client.post(
            f"{server.url}/uploads",
            params={"complete": "true", "filename": name},
            content=data,
            headers={**owner, "Content-Type": "application/octet-stream"},
        )
        if whole.status_code == 422 and name.isprintable():
            raise AssertionError(f"{name!r} was refused: {whole.text}")
        if whole.status_code == 422:
            assert error_code(whole) == "VALIDATION_FAILED"
            continue
        assert whole.status_code == 201, (name, whole.status_code, whole.text)
        assert_safe_download(client, f"{server.files_url}{whole.json()['id']}", owner, name, data)

    assert_nothing_escaped(auth, marker)
    after = Path("/etc/passwd").stat()
    assert (after.st_mtime_ns, after.st_size) == (passwd.st_mtime_ns, passwd.st_size)
    assert_still_serving(auth, client)


# -- limits ----------------------------------------------------------------------------------


def test_max_size_is_413_and_stores_nothing(limits: Deployment, client: httpx.Client) -> None:
    server, owner = limits.server, limits.mint("big")
    before = data_files(limits)
    over = str(MAX_SIZE + 1)
    tus = client.post(server.files_url, headers={**TUS, **owner, "Upload-Length": over})
    assert tus.status_code == 413
    assert tus.text.startswith("UPLOAD_TOO_LARGE")
    huge = client.post(server.files_url, headers={**TUS, **owner, "Upload-Length": str(2**63 - 1)})
    assert huge.status_code == 413
    session = client.post(
        f"{server.url}/uploads", json={"filename": "a", "size": MAX_SIZE + 1}, headers=owner
    )
    assert_rest_error(session, 413, "UPLOAD_TOO_LARGE")
    whole = client.post(
        f"{server.url}/uploads?complete=true",
        content=b"\0" * (MAX_SIZE + 1),
        headers={**owner, "Content-Type": "application/octet-stream"},
    )
    assert_rest_error(whole, 413, "UPLOAD_TOO_LARGE")
    assert data_files(limits) == before  # nothing was created

    # a deferred length cannot grow past the maximum
    deferred = client.post(server.files_url, headers={**TUS, **owner, "Upload-Defer-Length": "1"})
    assert deferred.status_code == 201
    location = deferred.headers["Location"]
    declared = client.patch(
        location,
        content=b"",
        headers={**PATCH, **owner, "Upload-Offset": "0", "Upload-Length": over},
    )
    assert declared.status_code == 413
    body = tus_patch(client, location, 0, b"\0" * (MAX_SIZE + 1), owner)
    assert body.status_code == 413
    assert tus_offset(client, location, owner) == 0
    # more than the declared length
    short = tus_create(client, server, 10, owner)
    assert tus_patch(client, short, 0, b"0123456789X", owner).status_code == 413
    assert tus_offset(client, short, owner) == 0
    assert stored_path(server, upload_id(short)).stat().st_size == 0
    assert_still_serving(limits, client)


def test_quotas_answer_403_quota_exceeded(limits: Deployment, client: httpx.Client) -> None:
    server = limits.server

    def refused(owner: Headers, length: int, quota: str) -> None:
        before = data_files(limits)
        tus = client.post(server.files_url, headers={**TUS, **owner, "Upload-Length": str(length)})
        assert tus.status_code == 403, (quota, tus.status_code, tus.text)
        assert tus.text.startswith("QUOTA_EXCEEDED")
        rest = client.post(
            f"{server.url}/uploads", json={"filename": "a", "size": length}, headers=owner
        )
        assert_rest_error(rest, 403, "QUOTA_EXCEEDED")
        assert rest.json()["error"]["details"]["quota"] == quota
        assert data_files(limits) == before

    # open uploads
    carol = limits.mint("quota-open")
    opened = [tus_create(client, server, 10, carol) for _ in range(MAX_OPEN)]
    refused(carol, 10, "open_uploads")
    assert client.delete(opened[0], headers={**TUS, **carol}).status_code == 204
    tus_create(client, server, 10, carol)  # room again once one is gone
    # bytes in flight: declared lengths of unfinished uploads
    dave = limits.mint("quota-flight")
    tus_create(client, server, 150_000, dave)
    refused(dave, MAX_IN_FLIGHT - 150_000 + 1, "bytes_in_flight")
    tus_create(client, server, MAX_IN_FLIGHT - 150_000, dave)  # exactly at the quota
    # bytes stored: finished and unfinished together
    erin = limits.mint("quota-stored")
    kept = audio(MAX_STORED - 100_000)
    tus_upload(client, server, kept, erin)
    refused(erin, 100_001, "bytes_stored")
    assert_still_serving(limits, client)


WINDOW = 1.0  # CHUNKD_MIN_RATE_WINDOW
PROMPT = 2.5  # seconds past the window or the idle timeout within which a request must end


def trickle(server: ServerProcess, head: str, source: bytes) -> tuple[RawAnswer, float, int]:
    """Send ``source`` 1 byte every 0.2 s (5 B/s against a floor of 1 KiB/s) until the server
    answers; returns the answer, the seconds it took and the bytes sent."""
    started = time.monotonic()
    sent = 0
    answer = None
    with SlowBody(server, head) as request:
        while answer is None and sent < len(source) and time.monotonic() - started < 20:
            if not request.send(source[sent : sent + 1]):
                answer = request.answer(timeout=5)
                break
            sent += 1
            answer = request.answer(timeout=0.2)
    ended = time.monotonic() - started
    assert answer is not None, f"still receiving after {ended:.1f} s and {sent} bytes"
    return answer, ended, sent


def test_a_trickling_body_is_ended_and_tus_keeps_what_arrived(
    limits: Deployment, client: httpx.Client
) -> None:
    server, owner = limits.server, limits.mint("trickler")
    source = audio(10_000)
    location = tus_create(client, server, len(source), owner)
    head = request_head(
        server, "PATCH", urlsplit(location).path, len(source),
        {**PATCH, **owner, "Upload-Offset": "0"},
    )  # fmt: skip
    answer, ended, sent = trickle(server, head, source)
    assert ended < WINDOW + PROMPT, f"ended after {ended:.1f} s"
    assert answer.status == 204, (answer.status, answer.body)
    kept = int(answer.headers["upload-offset"])
    assert 3 <= kept <= sent, (kept, sent)
    assert tus_offset(client, location, owner) == kept  # acknowledged: HEAD shows them
    assert stored_path(server, upload_id(location)).read_bytes()[:kept] == source[:kept]
    # and the client resumes from there
    rest = tus_patch(client, location, kept, source[kept:], owner)
    assert rest.status_code == 204
    assert client.get(location, headers=owner).content == source
    assert_still_serving(limits, client)


@pytest.mark.parametrize("how", ["trickle", "stall"])
def test_a_slow_rest_part_is_ended_promptly_and_stores_nothing(
    limits: Deployment, client: httpx.Client, how: str
) -> None:
    server, owner = limits.server, limits.mint(f"slow-part-{how}")
    source = audio(100_000)
    session = rest_session(client, server, owner, filename="t.wav", size=len(source))
    head = request_head(server, "PUT", f"/uploads/{session['id']}/parts/0", len(source), owner)
    if how == "trickle":
        answer, ended, _ = trickle(server, head, source)
        limit = WINDOW + PROMPT
    else:
        started = time.monotonic()
        with SlowBody(server, head) as request:
            assert request.send(source[:50_000])
            stalled = request.answer(timeout=IDLE + 10)
        ended = time.monotonic() - started
        assert stalled is not None, "the stalled part was never ended"
        answer, limit = stalled, IDLE + PROMPT
    body = json.loads(answer.body)
    # either way the client may still be there: told to send the part again
    assert (answer.status, body["error"]["code"]) == (408, "REQUEST_TOO_SLOW"), answer.body
    assert body["error"]["retryable"] is True
    status = rest_status(client, server, session["id"], owner)
    assert (status["parts_received"], status["offset"]) == (0, 0)  # a part counts whole
    assert ended < limit, f"{how}: answered {ended:.1f} s after the first byte"
    assert_still_serving(limits, client)


def test_a_stalled_body_is_ended_by_the_idle_timeout_and_its_prefix_kept(
    limits: Deployment, client: httpx.Client
) -> None:
    server, owner = limits.server, limits.mint("staller")
    source = audio(200_000)
    prefix = 50_000
    location = tus_create(client, server, len(source), owner)
    head = request_head(
        server,
        "PATCH",
        urlsplit(location).path,
        len(source),
        {**PATCH, **owner, "Upload-Offset": "0"},
    )
    with SlowBody(server, head) as request:
        assert request.send(source[:prefix])
        started = time.monotonic()
        answer = request.answer(timeout=IDLE + 5)
        waited = time.monotonic() - started
    assert answer is not None, "the stalled request was never ended"
    assert waited >= IDLE * 0.8, waited
    assert answer.status == 204, (answer.status, answer.body)
    assert answer.headers["upload-offset"] == str(prefix)
    assert tus_offset(client, location, owner) == prefix
    assert stored_path(server, upload_id(location)).read_bytes()[:prefix] == source[:prefix]
    assert tus_patch(client, location, prefix, source[prefix:], owner).status_code == 204
    assert client.get(location, headers=owner).content == source
    assert_still_serving(limits, client)


def bound(address: str) -> httpx.Client:
    """A client whose connections come from ``address`` (any of 127.0.0.0/8 on Linux)."""
    return httpx.Client(timeout=10, transport=httpx.HTTPTransport(local_address=address))


def assert_rate_limited(answer: httpx.Response, *, rest: bool) -> None:
    assert answer.status_code == 429, (answer.status_code, answer.text)
    assert 1 <= int(answer.headers["Retry-After"]) <= 61, answer.headers["Retry-After"]
    if rest:
        assert error_code(answer) == "RATE_LIMITED"
        assert answer.json()["error"]["retryable"] is True


def test_request_rates_per_owner_and_per_address_answer_429(rates: Deployment) -> None:
    server = rates.server
    unknown = f"{server.files_url}{secrets.token_hex(16)}"
    with bound("127.0.0.2") as client:
        alice = rates.mint("rate-alice")
        location = tus_create(client, server, 10, alice)
        for _ in range(PER_OWNER - 1):
            assert client.head(location, headers={**TUS, **alice}).status_code == 200
        assert_rate_limited(client.head(location, headers={**TUS, **alice}), rest=False)
        assert_rate_limited(tus_patch(client, location, 0, b"0123456789", alice), rest=False)
        assert_rate_limited(
            client.get(f"{server.url}/uploads/{upload_id(location)}", headers=alice), rest=True
        )
        # per owner: someone else at the same address is still served
        assert client.head(unknown, headers={**TUS, **rates.mint("rate-bob")}).status_code == 404
    # per address: many owners, one address
    with bound("127.0.0.3") as client:
        for index in range(PER_ADDRESS):
            owner = rates.mint(f"rate-crowd-{index // 5}")
            assert client.head(unknown, headers={**TUS, **owner}).status_code == 404, index
        fresh = rates.mint("rate-fresh")
        assert_rate_limited(client.head(unknown, headers={**TUS, **fresh}), rest=False)
        assert_rate_limited(
            client.post(f"{server.url}/uploads", json={"filename": "a", "size": 1}, headers=fresh),
            rest=True,
        )
        assert_rate_limited(client.head(unknown, headers=TUS), rest=False)  # before any auth
        # the server is not behind a proxy: a forged client address changes nothing
        spoofed = {**TUS, **fresh, "X-Forwarded-For": "10.1.2.3", "Forwarded": "for=10.1.2.3"}
        assert_rate_limited(client.head(unknown, headers=spoofed), rest=False)
        assert client.get(f"{server.url}/healthz").status_code == 200
        assert rates.bystander.partial_url  # nothing of the bystander was asked from here
    with bound("127.0.0.4") as client:
        assert_still_serving(rates, client)  # another address, another owner: served


# -- content ---------------------------------------------------------------------------------


def padded(head: bytes, size: int = 50_000) -> bytes:
    return head + os.urandom(size - len(head))


def test_disallowed_types_named_wav_are_415_at_the_first_patch(
    audio_only: Deployment, client: httpx.Client
) -> None:
    server, owner = audio_only.server, audio_only.mint("typist")
    for kind, data in (("elf", padded(samples.elf())), ("zip", padded(samples.zip_archive()))):
        location = tus_create(
            client, server, len(data), owner, filename=f"{kind}.wav", filetype="audio/wav"
        )
        answer = tus_patch(client, location, 0, data, owner)
        assert answer.status_code == 415, (kind, answer.status_code, answer.text)
        assert answer.text.startswith("UNSUPPORTED_MEDIA_TYPE"), answer.text
        assert tus_offset(client, location, owner) == 0, kind
        stored = stored_path(server, upload_id(location)).read_bytes()
        assert stored == b"", (kind, len(stored))  # nothing stored
        # creation-with-upload: the same, and the upload it made takes nothing either
        created = client.post(
            server.files_url,
            content=data,
            headers={
                **PATCH,
                **owner,
                "Upload-Length": str(len(data)),
                "Upload-Metadata": metadata(filename=f"{kind}.wav"),
            },
        )
        assert created.status_code == 415, (kind, created.status_code)
        assert tus_offset(client, created.headers["Location"], owner) == 0
        # REST: part 0 and a whole-file POST
        session = rest_session(
            client, server, owner, filename=f"{kind}.wav", size=len(data), content_type="audio/wav"
        )
        part = client.put(
            f"{server.url}/uploads/{session['id']}/parts/0", content=data, headers=owner
        )
        assert_rest_error(part, 415, "UNSUPPORTED_MEDIA_TYPE")
        assert rest_status(client, server, session["id"], owner)["parts_received"] == 0
        whole = client.post(
            f"{server.url}/uploads?complete=true&filename={kind}.wav",
            content=data,
            headers={**owner, "Content-Type": "audio/wav"},
        )
        assert_rest_error(whole, 415, "UNSUPPORTED_MEDIA_TYPE")
    # a real WAV passes (and is scanned clean)
    wav = samples.wav(seconds=1.0)
    location = tus_upload(client, server, wav, owner, filename="real.wav", filetype="audio/wav")
    got = client.get(location, headers=owner)
    assert got.content == wav and got.headers["ETag"] == f'"{sha256(wav)}"'
    status = rest_status(client, server, upload_id(location), owner)
    assert (status["state"], status["sniffed_type"]) == ("complete", "audio/wav")
    assert_still_serving(audio_only, client)


def assert_infected(
    deployment: Deployment, client: httpx.Client, uid: str, owner: Headers, clamd: ClamdProcess
) -> None:
    status = rest_status(client, deployment.server, uid, owner)
    assert status["state"] == "failed", status
    assert status["error"].startswith("INFECTED_FILE") and clamd.signature in status["error"]
    assert not stored_path(deployment.server, uid).exists()  # its bytes are removed
    download = client.get(f"{deployment.server.files_url}{uid}", headers=owner)
    assert download.status_code == 409, download.status_code


def test_eicar_is_refused_its_bytes_removed_and_clean_files_pass(
    scan: Deployment, clamd: ClamdProcess, client: httpx.Client
) -> None:
    server, owner = scan.server, scan.mint("infector")
    infected = eicar() + b"\n"
    # tus: the PATCH that completes the upload answers 422 INFECTED_FILE
    location = tus_create(client, server, len(infected), owner, filename="eicar.com")
    answer = tus_patch(client, location, 0, infected, owner)
    assert answer.status_code == 422, (answer.status_code, answer.text)
    assert answer.text.startswith("INFECTED_FILE"), answer.text
    assert_infected(scan, client, upload_id(location), owner, clamd)
    # REST session: complete answers 422 INFECTED_FILE
    session = rest_session(client, server, owner, filename="eicar.com", size=len(infected))
    part = client.put(
        f"{server.url}/uploads/{session['id']}/parts/0", content=infected, headers=owner
    )
    assert part.status_code == 201, part.text
    done = client.post(f"{server.url}/uploads/{session['id']}/complete", headers=owner)
    assert_rest_error(done, 422, "INFECTED_FILE")
    assert_infected(scan, client, session["id"], owner, clamd)
    again = client.post(f"{server.url}/uploads/{session['id']}/complete", headers=owner)
    assert_rest_error(again, 422, "INFECTED_FILE")  # the same verdict, not a second chance
    # REST whole file
    whole = client.post(
        f"{server.url}/uploads?complete=true&filename=e.com",
        content=infected,
        headers={**owner, "Content-Type": "application/octet-stream"},
    )
    assert_rest_error(whole, 422, "INFECTED_FILE")
    # hidden in the middle of a larger file
    middle = os.urandom(300_000) + eicar() + os.urandom(300_000)
    location = tus_create(client, server, len(middle), owner)
    assert tus_patch(client, location, 0, middle[:200_000], owner).status_code == 204
    answer = tus_patch(client, location, 200_000, middle[200_000:], owner)
    assert answer.status_code == 422 and answer.text.startswith("INFECTED_FILE")
    assert_infected(scan, client, upload_id(location), owner, clamd)
    # split across two partial uploads: each piece passes, the joined file does not
    pieces = []
    for piece in (infected[:30], infected[30:]):
        created = client.post(
            server.files_url,
            headers={**TUS, **owner, "Upload-Concat": "partial", "Upload-Length": str(len(piece))},
        )
        assert created.status_code == 201
        assert tus_patch(client, created.headers["Location"], 0, piece, owner).status_code == 204
        pieces.append(created.headers["Location"])
    final = client.post(
        server.files_url, headers={**TUS, **owner, "Upload-Concat": "final;" + " ".join(pieces)}
    )
    assert final.status_code == 422, (final.status_code, final.text)
    assert final.text.startswith("INFECTED_FILE")
    # clean files pass on both protocols
    clean = os.urandom(300_000)
    location = tus_upload(client, server, clean, owner)
    assert client.get(location, headers=owner).content == clean
    session = rest_session(
        client, server, owner, filename="clean.bin", size=len(clean), sha256=sha256(clean)
    )
    part = client.put(f"{server.url}/uploads/{session['id']}/parts/0", content=clean, headers=owner)
    assert part.status_code == 201
    done = client.post(f"{server.url}/uploads/{session['id']}/complete", headers=owner)
    assert done.status_code == 200 and done.json()["state"] == "complete", done.text
    assert_still_serving(scan, client)


def test_eicar_inside_a_real_wav_passes_the_type_check_but_not_the_scan(
    audio_only: Deployment, clamd: ClamdProcess, client: httpx.Client
) -> None:
    server, owner = audio_only.server, audio_only.mint("smuggler")
    data = samples.wav(seconds=0.5) + eicar() + os.urandom(1000)
    location = tus_create(
        client, server, len(data), owner, filename="talk.wav", filetype="audio/wav"
    )
    answer = tus_patch(client, location, 0, data, owner)
    assert answer.status_code == 422, (answer.status_code, answer.text)
    assert answer.text.startswith("INFECTED_FILE")
    assert_infected(audio_only, client, upload_id(location), owner, clamd)
    assert_still_serving(audio_only, client)
