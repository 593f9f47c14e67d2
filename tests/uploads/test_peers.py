"""Workers of one data directory messaging each other (and events relayed between them)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
from pathlib import Path
from typing import Any

import pytest

from chunkd.uploads.events import Event
from chunkd.uploads.events_peers import PeerEventBus
from chunkd.uploads.peers import Peers


async def _settle() -> None:
    for _ in range(20):  # datagrams between sockets of this process: a few loop turns
        await asyncio.sleep(0.005)


async def test_a_message_reaches_the_named_worker_and_broadcasts_reach_all(tmp_path: Path) -> None:
    run = tmp_path / "run" / "peers"
    peers = [Peers(run, ident=4_000_001 + n) for n in range(3)]
    got: list[list[dict[str, Any]]] = [[], [], []]
    for peer, inbox in zip(peers, got, strict=True):
        peer.on("hello", inbox.append)
        await peer.open()
    try:
        assert sorted(peers[0].others()) == [4_000_002, 4_000_003]
        assert peers[0].send(4_000_002, {"kind": "hello", "n": 1})
        await _settle()
        assert got == [[], [{"kind": "hello", "n": 1, "from": 4_000_001}], []]
        peers[2].broadcast({"kind": "hello", "n": 2})
        peers[2].broadcast({"kind": "unknown kind: ignored"})
        await _settle()
        assert got[0] == [{"kind": "hello", "n": 2, "from": 4_000_003}]
        assert got[1][-1] == {"kind": "hello", "n": 2, "from": 4_000_003}
        assert got[2] == []  # not to itself
    finally:
        for peer in peers:
            await peer.close()
    assert list(run.iterdir()) == []


async def test_a_worker_that_is_gone_is_forgotten(tmp_path: Path) -> None:
    run = tmp_path / "peers"
    peer = Peers(run, ident=4_000_011)
    await peer.open()
    try:
        (run / "4000012").touch()  # a worker killed with -9 left its file; its socket is gone
        assert 4_000_012 in peer.others()
        assert not peer.send(4_000_012, {"kind": "hello"})
        assert not (run / "4000012").exists()
        assert peer.others() == []
    finally:
        await peer.close()


async def test_events_reach_subscribers_of_other_workers_only_while_someone_listens(
    tmp_path: Path,
) -> None:
    run = tmp_path / "peers"
    a, b = PeerEventBus(Peers(run, ident=4_000_021)), PeerEventBus(Peers(run, ident=4_000_022))
    sent: list[dict[str, Any]] = []
    await a.start()
    await b.start()
    original = a._peers.broadcast
    a._peers.broadcast = lambda message: (  # type: ignore[method-assign]
        sent.append(message),
        original(message),
    )
    try:
        assert a.subscribers == 0
        a.publish(Event("progress", "u1", None, {"offset": 1}))
        assert not [m for m in sent if m["kind"] == "event"]  # nobody anywhere listens
        with b.subscribe(upload_id="u1") as subscription:
            await _settle()
            assert a.subscribers == 1 and b.subscribers == 1
            a.publish(Event("progress", "u1", "alice", {"offset": 2}))
            event = await subscription.get(within=2)
            assert event is not None
            assert (event.type, event.upload_id, event.owner, event.data) == (
                "progress",
                "u1",
                "alice",
                {"offset": 2},
            )
        await _settle()
        assert a.subscribers == 0
    finally:
        await a.stop()
        await b.stop()


async def test_progress_told_by_two_workers_never_goes_back(tmp_path: Path) -> None:
    a, b = (
        PeerEventBus(Peers(tmp_path, ident=4_000_031)),
        PeerEventBus(Peers(tmp_path, ident=4_000_032)),
    )
    await a.start()
    await b.start()
    try:
        with b.subscribe(upload_id="u1") as subscription:
            await _settle()
            a.publish(Event("progress", "u1", None, {"bytes_received": 500}))
            await _settle()
            b.publish(Event("progress", "u1", None, {"bytes_received": 300}))  # b saw less
            b.publish(Event("progress", "u1", None, {"bytes_received": 700}))
            a.publish(Event("completed", "u1", None, {}))
            seen = []
            while (event := await subscription.get(within=1)) is not None:
                seen.append((event.type, event.data.get("bytes_received")))
                if event.type == "completed":
                    break
        assert seen == [("progress", 500), ("progress", 700), ("completed", None)]
    finally:
        await a.stop()
        await b.stop()


async def test_only_this_servers_user_is_listened_to(tmp_path: Path) -> None:
    """Abstract socket names have no file permissions: a message from another user is dropped
    (sent here with that user's credentials, which only root may claim)."""
    peer = Peers(tmp_path, ident=4_000_041)
    got: list[dict[str, Any]] = []
    peer.on("release", got.append)
    await peer.open()
    try:
        payload = json.dumps({"kind": "release", "upload": "u1", "from": 1}).encode()
        stranger = struct.pack("iII", os.getpid(), 65534, 65534)
        creds = [(socket.SOL_SOCKET, socket.SCM_CREDENTIALS, stranger)]
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            if os.geteuid() == 0:
                sock.sendmsg([payload], creds, 0, peer.address(4_000_041))
            else:  # nobody else can claim to be another user
                with pytest.raises(PermissionError):
                    sock.sendmsg([payload], creds, 0, peer.address(4_000_041))
            sock.sendto(payload.replace(b"u1", b"u2"), peer.address(4_000_041))  # our user
        await _settle()
        assert [message["upload"] for message in got] == ["u2"]
    finally:
        await peer.close()


async def test_subscribers_of_a_worker_that_died_are_not_counted(tmp_path: Path) -> None:
    bus = PeerEventBus(Peers(tmp_path, ident=4_000_051))
    await bus.start()
    try:
        (tmp_path / "4000052").touch()  # a worker that announced a subscriber, then was killed
        bus._peers._known_at = -1.0  # (a message from an unknown worker has the list re-read)
        bus._on_count({"kind": "subscribers", "from": 4_000_052, "count": 1})
        assert bus.subscribers == 1
        (tmp_path / "4000052").unlink()  # forgotten (its socket refused a message)
        bus._peers._known_at = -1.0  # the list is read again (once a second)
        assert bus.subscribers == 0
        assert bus._remote == {}
    finally:
        await bus.stop()
