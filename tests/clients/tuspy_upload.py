"""Upload one file to a tus server with tuspy, resumably, one line of progress per step.

Run as ``python tuspy_upload.py ENDPOINT FILE STORE [--chunk-size N] [--delay S]``. The upload
URL is kept in a tuspy ``FileStorage`` (``STORE``) under the file's fingerprint, so running the
same command again after this process died resumes the same upload from the server's offset.

Standard output, one event per line, flushed at once (the tests read it while we run):
``created URL`` or ``resumed URL OFFSET``, then ``patch OFFSET`` before and ``acked OFFSET``
after each chunk, then ``done URL``.
"""

from __future__ import annotations

import argparse
import time

from tusclient.client import TusClient
from tusclient.storage.filestorage import FileStorage


def say(*words: object) -> None:
    print(*words, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("endpoint")
    parser.add_argument("file")
    parser.add_argument("store")
    parser.add_argument("--chunk-size", type=int, default=5 * 1024 * 1024)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between chunks")
    args = parser.parse_args()

    storage = FileStorage(args.store)
    try:
        uploader = TusClient(args.endpoint).uploader(
            file_path=args.file,
            chunk_size=args.chunk_size,
            metadata={"filename": "resumable.bin"},
            store_url=True,
            url_storage=storage,
        )
        # The constructor found the URL in the store and asked the server (HEAD) for its offset.
        if uploader.url is None:
            uploader.set_url(uploader.create_url())
            uploader.offset = 0
            say("created", uploader.url)
        else:
            say("resumed", uploader.url, uploader.offset)
        size = uploader.get_file_size()
        while uploader.offset < size:
            say("patch", uploader.offset)
            uploader.upload_chunk()
            say("acked", uploader.offset)
            if uploader.offset < size:
                time.sleep(args.delay)
        say("done", uploader.url)
    finally:
        storage.close()


if __name__ == "__main__":
    main()
