"""The ``chunkd`` command line (``chunkd.cli.main``)."""

import sys

# httpx loads its own command line (click, rich, pygments) whenever those are installed (about
# a tenth of `chunkd upload`'s start-up); a None entry makes that import fail, as httpx expects
# when they are missing. Only this process is affected, and it never runs httpx's command.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
