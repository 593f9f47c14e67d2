"""The public address of this server as the client sees it, behind proxies or not.

With ``behind_proxy`` on, ``Forwarded`` (RFC 7239) wins over ``X-Forwarded-Host`` /
``X-Forwarded-Proto`` / ``X-Forwarded-Port``; only the first (client-most) hop counts. Hosts are
checked against a strict pattern so a forged header cannot inject text into ``Location``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from starlette.requests import HTTPConnection

_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})*"
    r"|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?"
)
_SCHEMES = frozenset({"http", "https"})


def _forwarded(value: str) -> dict[str, str]:
    first = value.split(",")[0]
    pairs: dict[str, str] = {}
    for item in first.split(";"):
        key, _, val = item.strip().partition("=")
        if key:
            pairs[key.strip().lower()] = val.strip().strip('"')
    return pairs


def public_origin(
    scheme: str,
    headers: Mapping[str, str],
    server: tuple[str, int | None] | None,
    *,
    behind_proxy: bool,
) -> str:
    """``scheme://host[:port]`` for building absolute URLs (``headers`` keys lower-case)."""
    hosts = []
    if behind_proxy:
        forwarded = _forwarded(headers["forwarded"]) if "forwarded" in headers else {}
        proto = forwarded.get("proto") or headers.get("x-forwarded-proto", "").split(",")[0]
        proto = proto.strip().lower()
        if proto in _SCHEMES:
            scheme = proto
        forwarded_host = forwarded.get("host") or headers.get("x-forwarded-host", "").split(",")[0]
        forwarded_host = forwarded_host.strip()
        port = headers.get("x-forwarded-port", "").strip()
        if forwarded_host and not forwarded and port.isdigit() and not _has_port(forwarded_host):
            forwarded_host = f"{forwarded_host}:{port}"
        hosts.append(forwarded_host)
    hosts.append(headers.get("host", ""))
    if server is not None:
        address = f"[{server[0]}]" if ":" in server[0] else server[0]
        hosts.append(address if server[1] is None else f"{address}:{server[1]}")
    host = next((candidate for candidate in hosts if _HOST.fullmatch(candidate)), "localhost")
    default = (scheme == "http" and host.endswith(":80")) or (
        scheme == "https" and host.endswith(":443")
    )
    if default:
        host = host.rsplit(":", 1)[0]
    return f"{scheme}://{host}"


def _has_port(host: str) -> bool:
    return ":" in host.rsplit("]", 1)[-1]


def absolute_url(request: HTTPConnection, path: str, behind_proxy: bool) -> str:
    origin = public_origin(
        request.url.scheme, request.headers, request.scope.get("server"), behind_proxy=behind_proxy
    )
    return f"{origin}{path}"
