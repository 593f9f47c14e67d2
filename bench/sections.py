"""Each benchmark owns one marked section of docs/benchmarks.md and rewrites only that."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, name: str, text: str, writer: str) -> None:
    start = f"<!-- section: {name} (written by {writer}) -->"
    end = f"<!-- end: {name} -->"
    block = f"{start}\n{text.rstrip()}\n{end}"
    current = path.read_text() if path.exists() else ""
    head, found, rest = current.partition(f"<!-- section: {name} ")
    if found:
        _, _, tail = rest.partition(end)
        path.write_text(f"{head}{block}{tail}")
    else:
        path.write_text(f"{current.rstrip()}\n\n{block}\n" if current else f"{block}\n")
