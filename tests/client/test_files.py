"""The reader's one pass over the file: whole-file sha256, per-span crc32c, bounded chunks."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import threading
import time
from pathlib import Path

import crc32c
import pytest

from chunkd.client._effects import FileSpan
from chunkd.client._errors import Cancelled, FileChanged
from chunkd.client._files import FileReader

MiB = 1024 * 1024


@pytest.fixture
def data() -> bytes:
    return os.urandom(9 * MiB + 12345)


@pytest.fixture
def fd(tmp_path: Path, data: bytes) -> int:  # type: ignore[misc]
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    descriptor = os.open(path, os.O_RDONLY)
    yield descriptor
    os.close(descriptor)


def crc_header(chunk: bytes) -> str:
    return base64.b64encode(crc32c.crc32c(chunk).to_bytes(4, "big")).decode()


def spans(size: int, part: int) -> list[FileSpan]:
    return [FileSpan(o, min(part, size - o), "content-digest") for o in range(0, size, part)]


def test_spans_in_any_order_from_many_threads(fd: int, data: bytes) -> None:
    reader = FileReader(fd, len(data), MiB + 7, ahead=2)
    parts = spans(len(data), MiB + 7)
    random.Random(4).shuffle(parts)
    headers: dict[int, str] = {}

    def ask(span: FileSpan) -> None:
        headers[span.offset] = reader.checksum(span)["X-Checksum-Crc32c"]

    threads = [threading.Thread(target=ask, args=(span,)) for span in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for span in parts:
        expected = crc_header(data[span.offset : span.offset + span.length])
        assert headers[span.offset] == expected
        assert reader.checksum(span)["X-Checksum-Crc32c"] == expected  # asked again: a retry
        assert b"".join(reader.chunks(span)) == data[span.offset : span.offset + span.length]
        assert all(len(chunk) <= MiB for chunk in reader.chunks(span))
    assert reader.sha256() == hashlib.sha256(data).hexdigest()
    reader.close()


def test_spans_skipped_by_a_resume_still_count_in_the_sha256(fd: int, data: bytes) -> None:
    reader = FileReader(fd, len(data), MiB)
    last = FileSpan(8 * MiB, len(data) - 8 * MiB, "upload-checksum")
    value = crc_header(data[8 * MiB :])
    assert reader.checksum(last) == {"Upload-Checksum": f"crc32c {value}"}
    odd = FileSpan(100, 5000, "content-digest")  # not a block: read and checked alone
    assert reader.checksum(odd)["X-Checksum-Crc32c"] == crc_header(data[100:5100])
    assert reader.checksum(FileSpan(0, 10)) == {}
    assert reader.sha256() == hashlib.sha256(data).hexdigest()
    reader.close()


def test_a_span_of_whole_blocks_combines_their_crcs_without_reading_again(
    fd: int, data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = FileReader(fd, len(data), 2 * MiB + 3)
    reader.sha256()  # the pass is done: every block's crc is known
    monkeypatch.setattr(os, "pread", lambda *args: pytest.fail("read again"))
    block = 2 * MiB + 3
    for first, count in [(0, 2), (1, 3), (2, 3), (0, 5)]:  # 5 blocks, the last one short
        start, stop = first * block, min(len(data), (first + count) * block)
        span = FileSpan(start, stop - start, "upload-checksum")
        value = crc_header(data[start:stop])
        assert reader.checksum(span) == {"Upload-Checksum": f"crc32c {value}"}
    reader.close()


def test_the_pass_runs_only_a_few_blocks_ahead_and_stops_on_close(fd: int, data: bytes) -> None:
    reader = FileReader(fd, len(data), MiB, ahead=2)
    reader.checksum(FileSpan(0, MiB, "content-digest"))
    time.sleep(0.2)
    assert reader._hashed <= 3  # block 0 asked for, two more ahead: then it waits
    reader.close()
    assert reader._thread is not None and not reader._thread.is_alive()
    with pytest.raises(Cancelled):
        reader.sha256()


def test_an_empty_file(fd: int) -> None:
    assert FileReader(fd, 0, MiB).sha256() == hashlib.sha256(b"").hexdigest()


def test_a_file_shorter_than_announced_is_a_changed_file(fd: int, data: bytes) -> None:
    reader = FileReader(fd, len(data) + 1, 4 * MiB)
    with pytest.raises(FileChanged, match="shorter"):
        reader.sha256()
    with pytest.raises(FileChanged, match="shorter"):
        list(reader.chunks(FileSpan(len(data) - 5, 6)))


def test_cancelling_stops_the_pass(fd: int, data: bytes) -> None:
    reader = FileReader(fd, len(data), MiB, cancelled=lambda: True)
    with pytest.raises(Cancelled):
        reader.sha256()
