"""The chunkd client SDK: resumable, parallel uploads to a chunkd server.

```python
from chunkd.client import Client

with Client("http://127.0.0.1:8080", token) as client:
    result = client.upload("scan.mrc", metadata={"sample": "42"})
```

``Client`` (threads) and ``AsyncClient`` (asyncio) run the same sans-I/O flows
(``chunkd.client._flow``): REST sessions with parallel parts by default, tus with
``protocol="tus"``. Give ``state=ResumeState()`` to resume across processes.
"""

from typing import TYPE_CHECKING

from chunkd.client._errors import (
    Cancelled,
    ChunkdError,
    FileChanged,
    RetriesExhausted,
    ServerRefused,
)
from chunkd.client._flow import UploadResult
from chunkd.client._progress import Progress
from chunkd.client._retry import RetryPolicy
from chunkd.client._state import ResumeState, default_data_dir

if TYPE_CHECKING:
    from chunkd.client._async import AsyncClient
    from chunkd.client._sync import Client

__all__ = [
    "AsyncClient",
    "Cancelled",
    "ChunkdError",
    "Client",
    "FileChanged",
    "Progress",
    "ResumeState",
    "RetriesExhausted",
    "RetryPolicy",
    "ServerRefused",
    "UploadResult",
    "default_data_dir",
]


def __getattr__(name: str) -> object:
    # The clients load when first asked for: Client brings httpx, AsyncClient asyncio too
    # (together ~0.1 s and 4 MiB), which the queue's store and `chunkd serve` do without.
    if name == "Client":
        from chunkd.client._sync import Client

        return Client
    if name == "AsyncClient":
        from chunkd.client._async import AsyncClient

        return AsyncClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
