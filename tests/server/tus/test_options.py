from __future__ import annotations

from collections.abc import Sequence

import httpx

from chunkd.storage.base import ByteWriter, Handle, Observer, Storage
from tests.server.conftest import ClientFactory


async def test_options_advertises_the_server(client: httpx.AsyncClient) -> None:
    for path in ("/files/", "/files", "/files/" + "0" * 32):
        answer = await client.options(path)
        assert answer.status_code == 204
        assert answer.headers["Tus-Version"] == "1.0.0"
        assert answer.headers["Tus-Max-Size"] == "1000"
        extensions = answer.headers["Tus-Extension"].split(",")
        assert set(extensions) == {
            "creation",
            "creation-with-upload",
            "creation-defer-length",
            "expiration",
            "checksum",
            "termination",
            "concatenation",
        }
        algorithms = set(answer.headers["Tus-Checksum-Algorithm"].split(","))
        assert {"sha1", "sha256", "md5", "crc32", "crc32c"} <= algorithms


class BytesOnlyStorage(Storage):
    """A backend with only the required abilities: no concatenation, no download."""

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def ping(self) -> None:
        pass

    async def create(self, upload_id: str, length: int | None) -> Handle:
        return {}

    def open_writer(
        self, handle: Handle, offset: int, observers: Sequence[Observer] = ()
    ) -> ByteWriter:
        raise NotImplementedError

    async def finish(self, handle: Handle, length: int) -> Handle:
        return handle

    async def delete(self, handle: Handle) -> int:
        return 0


async def test_extensions_follow_the_storage_backend(make_client: ClientFactory) -> None:
    async with make_client(storage=BytesOnlyStorage()) as client:
        answer = await client.options("/files/")
        assert "concatenation" not in answer.headers["Tus-Extension"].split(",")
        final = await client.post(
            "/files/",
            headers={"Tus-Resumable": "1.0.0", "Upload-Concat": "final;/files/" + "a" * 32},
        )
        assert final.status_code == 400
