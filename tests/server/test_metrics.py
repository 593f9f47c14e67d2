from __future__ import annotations

import re

import httpx

from tests.server.conftest import PATCH, TUS, create


def value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if match is None or match.group(1) != name:
            continue
        if dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or "")) == labels:
            return float(match.group(3))
    return 0.0


async def test_metrics_move_with_real_traffic(client: httpx.AsyncClient) -> None:
    before = (await client.get("/metrics")).text
    location = await create(client, 10)
    await client.patch(location, content=b"0123456789", headers={**PATCH, "Upload-Offset": "0"})
    await client.head("/files/" + "0" * 32, headers=TUS)
    after = (await client.get("/metrics")).text
    patch = {"route": "/files/{upload_id}", "method": "PATCH", "status": "204"}
    assert (
        value(after, "chunkd_requests_total", **patch)
        == value(before, "chunkd_requests_total", **patch) + 1
    )
    missing = {"route": "/files/{upload_id}", "method": "HEAD", "status": "404"}
    assert value(after, "chunkd_requests_total", **missing) >= 1
    assert (
        value(after, "chunkd_received_bytes_total")
        >= value(before, "chunkd_received_bytes_total") + 10
    )
    assert value(after, "chunkd_uploads", state="complete") == 1
    assert value(after, "chunkd_write_seconds_count", method="PATCH") >= 1
    assert "chunkd_active_uploads 0.0" in after
    assert "chunkd_hook_deliveries_total" in after and "chunkd_swept_bytes_total" in after
