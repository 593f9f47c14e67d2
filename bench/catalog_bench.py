"""Catalog benchmark: operations per second of the SQLite and PostgreSQL catalogs, same run.

    .venv/bin/python bench/catalog_bench.py [--uploads 2000] [--concurrency 16] [--out FILE]

``--out`` rewrites the ``catalog-bench`` section of that Markdown file (bench/sections.py).

Each catalog gets the operations an upload makes, in the shape the service makes them:
``insert`` (create), ``compare_and_set`` of the offset (one per acknowledged PATCH or part),
``add_part``, ``get`` (HEAD / status) and ``usage`` (the quota check at create), each run as
``--uploads`` calls spread over ``--concurrency`` concurrent tasks, timed per kind.

SQLite runs in a temporary directory (WAL, ``synchronous=FULL``, as served). PostgreSQL is a
private server started for the run by ``chunkd.testing.postgres`` — note that it runs with
``fsync=off`` (test settings), so its numbers measure round trips and server work, not the
disk; the SQLite figures include a real fsync per commit. ``--sqlite-normal`` drops SQLite to
``synchronous=NORMAL`` (no fsync per commit) for the like-for-like comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import asyncpg  # noqa: E402
from sections import write_section  # noqa: E402

from chunkd.catalog.base import Catalog  # noqa: E402
from chunkd.catalog.postgres import PostgresCatalog  # noqa: E402
from chunkd.catalog.sqlite import SqliteCatalog  # noqa: E402
from chunkd.testing.catalog_contract import make_upload  # noqa: E402
from chunkd.testing.postgres import running_postgres  # noqa: E402
from chunkd.uploads.models import Part  # noqa: E402


async def _spread(n: int, concurrency: int, call: Callable[[int], Awaitable[object]]) -> float:
    queue = iter(range(n))

    async def worker() -> None:
        for i in queue:
            await call(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - started)


async def measure(catalog: Catalog, n: int, concurrency: int) -> dict[str, float]:
    uploads = [make_upload(id=secrets.token_hex(16), owner=f"o{i % 50}") for i in range(n)]
    ids = [u.id for u in uploads]
    rates: dict[str, float] = {}
    rates["insert"] = await _spread(n, concurrency, lambda i: catalog.insert(uploads[i]))
    rates["compare_and_set"] = await _spread(
        n, concurrency, lambda i: catalog.compare_and_set(ids[i], {"offset": 0}, {"offset": 10})
    )
    rates["add_part"] = await _spread(
        n, concurrency, lambda i: catalog.add_part(ids[i], Part(0, 10, "ab" * 32))
    )
    rates["get"] = await _spread(n, concurrency, lambda i: catalog.get(ids[i]))
    rates["usage"] = await _spread(n, concurrency, lambda i: catalog.usage(f"o{i % 50}"))
    return rates


async def run(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="chunkd-catbench-") as tmp:
        durable = not args.sqlite_normal
        async with SqliteCatalog(Path(tmp) / "c.sqlite3", durable=durable) as sqlite:
            label = "sqlite (synchronous=FULL)" if durable else "sqlite (synchronous=NORMAL)"
            results[label] = await measure(sqlite, args.uploads, args.concurrency)
    with running_postgres() as server:
        admin = await asyncpg.connect(server.dsn())
        await admin.execute("CREATE DATABASE bench")
        await admin.close()
        async with PostgresCatalog(server.dsn("bench"), pool_size=args.concurrency) as pg:
            results["postgres (fsync=off)"] = await measure(pg, args.uploads, args.concurrency)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sqlite-normal", action="store_true")
    parser.add_argument("--out", type=Path, help="write the table to this Markdown file")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    kinds = list(next(iter(results.values())))
    lines = [
        f"Catalog operations per second ({args.uploads} calls each, "
        f"{args.concurrency} concurrent):",
        "",
        "| catalog | " + " | ".join(kinds) + " |",
        "| --- | " + " | ".join("---:" for _ in kinds) + " |",
    ]
    for name, rates in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{rates[k]:,.0f}" for k in kinds) + " |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        flags = " --sqlite-normal" if args.sqlite_normal else ""
        section = [
            "## Catalog operations: SQLite and PostgreSQL",
            "",
            f"`.venv/bin/python bench/catalog_bench.py --uploads {args.uploads} --concurrency "
            f"{args.concurrency}{flags} --out {args.out}` ({time.strftime('%Y-%m-%d')}, "
            f"{os.cpu_count()} cores), same run, the operations an upload makes. SQLite as "
            "labelled (`synchronous=FULL` syncs its WAL on every commit, as served); the private "
            "PostgreSQL runs with fsync off, so its figures are round trips and server work on "
            "this machine, not the disk.",
            "",
            table,
        ]
        write_section(args.out, "catalog-bench", "\n".join(section), "bench/catalog_bench.py")


if __name__ == "__main__":
    main()
