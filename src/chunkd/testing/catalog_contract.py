"""The behaviour every catalog backend must show. Subclass and provide a ``catalog`` fixture::

class TestSqliteCatalog(CatalogContract):
    @pytest.fixture
    async def catalog(self, tmp_path): ...
"""

from __future__ import annotations

import asyncio
import secrets

import pytest

from chunkd.catalog.base import Activity, Catalog, Usage
from chunkd.uploads.models import Part, Upload, UploadState


def make_upload(**changes: object) -> Upload:
    base = Upload(
        id=secrets.token_hex(16),
        length=1000,
        owner="alice",
        metadata={"filename": "a.wav", "flag": None},
        storage={"path": "files/ab/abc"},
        created_at=100.0,
        updated_at=100.0,
        expires_at=200.0,
    )
    return base.replace(**changes)


class CatalogContract:
    async def test_insert_then_get_round_trips_every_field(self, catalog: Catalog) -> None:
        upload = make_upload(
            partial=True,
            concat_parts=("a" * 32, "b" * 32),
            digests={"sha256": "00ff"},
            expected_digests={"md5": "11"},
            error="boom",
            part_size=5 * 1024 * 1024,
            state=UploadState.VERIFYING,
        )
        await catalog.insert(upload)
        assert await catalog.get(upload.id) == upload

    async def test_deferred_length_and_empty_fields_round_trip(self, catalog: Catalog) -> None:
        upload = make_upload(length=None, metadata={}, expires_at=None, concat_parts=None)
        await catalog.insert(upload)
        assert await catalog.get(upload.id) == upload

    async def test_get_unknown_is_none(self, catalog: Catalog) -> None:
        assert await catalog.get("0" * 32) is None

    async def test_insert_twice_fails(self, catalog: Catalog) -> None:
        upload = make_upload()
        await catalog.insert(upload)
        with pytest.raises(Exception):  # noqa: B017 - each backend raises its own error
            await catalog.insert(upload)

    async def test_compare_and_set_applies_when_expectations_hold(self, catalog: Catalog) -> None:
        upload = make_upload()
        await catalog.insert(upload)
        updated = await catalog.compare_and_set(
            upload.id, {"offset": 0, "state": UploadState.RECEIVING}, {"offset": 10}
        )
        assert updated == upload.replace(offset=10)
        assert await catalog.get(upload.id) == updated

    async def test_compare_and_set_refuses_stale_expectations(self, catalog: Catalog) -> None:
        upload = make_upload()
        await catalog.insert(upload)
        assert await catalog.compare_and_set(upload.id, {"offset": 5}, {"offset": 10}) is None
        assert await catalog.compare_and_set("0" * 32, {}, {"offset": 10}) is None
        assert await catalog.get(upload.id) == upload

    async def test_compare_and_set_matches_null(self, catalog: Catalog) -> None:
        upload = make_upload(length=None)
        await catalog.insert(upload)
        assert await catalog.compare_and_set(upload.id, {"length": None}, {"length": 9})
        assert await catalog.compare_and_set(upload.id, {"length": None}, {"length": 7}) is None
        assert (await catalog.get(upload.id) or upload).length == 9

    async def test_only_one_of_racing_compare_and_sets_wins(self, catalog: Catalog) -> None:
        upload = make_upload()
        await catalog.insert(upload)
        results = await asyncio.gather(
            *(
                catalog.compare_and_set(
                    upload.id,
                    {"state": UploadState.RECEIVING},
                    {"state": UploadState.VERIFYING, "offset": n},
                )
                for n in range(20)
            )
        )
        assert sum(result is not None for result in results) == 1

    async def test_compare_and_set_rejects_unknown_fields(self, catalog: Catalog) -> None:
        upload = make_upload()
        await catalog.insert(upload)
        with pytest.raises(ValueError):
            await catalog.compare_and_set(upload.id, {}, {"nonsense": 1})
        with pytest.raises(ValueError):
            await catalog.compare_and_set(upload.id, {}, {"id": "x"})

    async def test_delete(self, catalog: Catalog) -> None:
        upload = make_upload()
        await catalog.insert(upload)
        assert await catalog.delete(upload.id) is True
        assert await catalog.delete(upload.id) is False
        assert await catalog.get(upload.id) is None

    async def test_list_expired_is_oldest_first_and_bounded(self, catalog: Catalog) -> None:
        uploads = [make_upload(expires_at=float(t)) for t in (50, 10, 30, 500)]
        uploads.append(make_upload(expires_at=None))
        for upload in uploads:
            await catalog.insert(upload)
        expired = await catalog.list_expired(100.0, 10)
        assert [u.expires_at for u in expired] == [10.0, 30.0, 50.0]
        assert len(await catalog.list_expired(100.0, 2)) == 2

    async def test_list_by_state(self, catalog: Catalog) -> None:
        receiving = make_upload(created_at=1.0)
        verifying = make_upload(state=UploadState.VERIFYING, created_at=2.0)
        complete = make_upload(state=UploadState.COMPLETE, created_at=3.0)
        for upload in (complete, verifying, receiving):
            await catalog.insert(upload)
        found = await catalog.list_by_state(
            frozenset({UploadState.RECEIVING, UploadState.VERIFYING}), 10
        )
        assert [u.id for u in found] == [receiving.id, verifying.id]

    async def test_parts_are_recorded_once(self, catalog: Catalog) -> None:
        upload = make_upload(part_size=10)
        await catalog.insert(upload)
        assert await catalog.add_part(upload.id, Part(3, 10, "aa")) is True
        assert await catalog.add_part(upload.id, Part(3, 10, "bb")) is False
        assert await catalog.add_part(upload.id, Part(0, 10, "cc")) is True
        assert await catalog.get_part(upload.id, 3) == Part(3, 10, "aa")
        assert await catalog.get_part(upload.id, 1) is None
        assert await catalog.list_parts(upload.id) == [Part(0, 10, "cc"), Part(3, 10, "aa")]

    async def test_racing_adds_of_one_part_record_it_once(self, catalog: Catalog) -> None:
        upload = make_upload(part_size=10)
        await catalog.insert(upload)
        added = await asyncio.gather(
            *(catalog.add_part(upload.id, Part(1, 10, str(n))) for n in range(10))
        )
        assert added.count(True) == 1

    async def test_parts_of_unknown_uploads_are_refused(self, catalog: Catalog) -> None:
        with pytest.raises(KeyError):
            await catalog.add_part("0" * 32, Part(0, 1, "aa"))

    async def test_deleting_an_upload_deletes_its_parts(self, catalog: Catalog) -> None:
        upload = make_upload(part_size=10)
        await catalog.insert(upload)
        await catalog.add_part(upload.id, Part(0, 10, "aa"))
        await catalog.delete(upload.id)
        assert await catalog.list_parts(upload.id) == []

    async def test_usage_adds_up_one_owners_uploads(self, catalog: Catalog) -> None:
        for upload in (
            make_upload(owner="ann", length=100),
            make_upload(owner="ann", length=None, offset=30),
            make_upload(owner="ann", length=7, state=UploadState.VERIFYING),
            make_upload(owner="ann", length=1000, state=UploadState.COMPLETE),
            make_upload(owner="ann", length=5000, state=UploadState.ABORTED),
            make_upload(owner="bob", length=9),
            make_upload(owner=None, length=11),
        ):
            await catalog.insert(upload)
        assert await catalog.usage("ann") == Usage(3, 137, 1000)
        assert await catalog.usage("bob") == Usage(1, 9, 0)
        assert await catalog.usage(None) == Usage(1, 11, 0)
        assert await catalog.usage("nobody") == Usage()

    async def test_nonces_are_single_use_until_purged(self, catalog: Catalog) -> None:
        assert await catalog.claim_nonce("n1", 100.0) is True
        assert await catalog.claim_nonce("n1", 100.0) is False
        assert await catalog.claim_nonce("n2", 300.0) is True
        assert await catalog.purge_nonces(200.0) == 1
        assert await catalog.claim_nonce("n2", 300.0) is False

    async def test_completion_writes_one_handoff_in_the_same_step(self, catalog: Catalog) -> None:
        upload = make_upload(state=UploadState.VERIFYING, updated_at=150.0)
        part = make_upload(state=UploadState.VERIFYING, partial=True)
        for record in (upload, part):
            await catalog.insert(record)
        assert await catalog.get_handoff(upload.id) is None
        done = {"state": UploadState.COMPLETE}
        assert await catalog.compare_and_set(upload.id, {"state": UploadState.VERIFYING}, done)
        assert await catalog.compare_and_set(part.id, {"state": UploadState.VERIFYING}, done)
        handoff = await catalog.get_handoff(upload.id)
        assert handoff is not None and (handoff.state, handoff.attempts) == ("pending", 0)
        assert await catalog.get_handoff(part.id) is None  # partial uploads are not handed on
        await catalog.compare_and_set(upload.id, {}, {"updated_at": 160.0})  # no second one
        assert len(await catalog.claim_handoffs(1000.0, 30.0, 10)) == 1

    async def test_handoffs_are_claimed_once_and_settled(self, catalog: Catalog) -> None:
        uploads = [make_upload(state=UploadState.VERIFYING, updated_at=100.0) for _ in range(3)]
        for upload in uploads:
            await catalog.insert(upload)
            await catalog.compare_and_set(upload.id, {}, {"state": UploadState.COMPLETE})
        first, second = await asyncio.gather(
            catalog.claim_handoffs(200.0, 30.0, 10), catalog.claim_handoffs(200.0, 30.0, 10)
        )
        assert len(first) + len(second) == 3  # every due hand-off to exactly one claimant
        assert await catalog.claim_handoffs(210.0, 30.0, 10) == []  # still claimed
        one, two, three = (u.id for u in uploads)
        await catalog.settle_handoff(one, delivered=True, now=220.0)
        await catalog.settle_handoff(two, delivered=False, now=220.0, next_at=300.0, error="503")
        await catalog.settle_handoff(three, delivered=False, now=220.0, error="gave up")
        assert (await catalog.get_handoff(one) or first[0]).state == "delivered"
        retry = await catalog.get_handoff(two)
        assert retry is not None and (retry.state, retry.last_error) == ("pending", "503")
        assert (await catalog.get_handoff(three) or first[0]).state == "failed"
        assert await catalog.claim_handoffs(250.0, 30.0, 10) == []
        again = await catalog.claim_handoffs(300.0, 30.0, 10)
        assert [h.upload_id for h in again] == [two] and again[0].attempts == 2

    async def test_list_uploads_filters_and_pages(self, catalog: Catalog) -> None:
        uploads = [
            make_upload(owner="ann", state=UploadState.RECEIVING, updated_at=10.0),
            make_upload(owner="ann", state=UploadState.COMPLETE, updated_at=20.0),
            make_upload(owner="bob", state=UploadState.COMPLETE, updated_at=30.0),
        ]
        for upload in uploads:
            await catalog.insert(upload)
        complete = await catalog.list_uploads(states=frozenset({UploadState.COMPLETE}))
        assert {u.id for u in complete} == {uploads[1].id, uploads[2].id}
        assert [u.id for u in await catalog.list_uploads(owner="bob")] == [uploads[2].id]
        assert len(await catalog.list_uploads(updated_before=25.0)) == 2
        ordered = sorted(u.id for u in uploads)
        page = await catalog.list_uploads(limit=2)
        assert [u.id for u in page] == ordered[:2]
        rest = await catalog.list_uploads(after=page[-1].id, limit=2)
        assert [u.id for u in rest] == ordered[2:]

    async def test_totals_by_owner_and_state(self, catalog: Catalog) -> None:
        for upload in (
            make_upload(owner="ann", length=10),
            make_upload(owner="ann", length=5),
            make_upload(owner="ann", length=7, state=UploadState.COMPLETE),
        ):
            await catalog.insert(upload)
        totals = {(t.owner, t.state): (t.uploads, t.bytes) for t in await catalog.totals()}
        assert totals == {
            ("ann", UploadState.RECEIVING): (2, 15),
            ("ann", UploadState.COMPLETE): (1, 7),
        }

    async def test_activity_counts_what_changed_since(self, catalog: Catalog) -> None:
        for upload in (
            make_upload(created_at=10.0, updated_at=20.0, state=UploadState.COMPLETE),  # before
            make_upload(created_at=90.0, updated_at=110.0, state=UploadState.COMPLETE, length=7),
            make_upload(created_at=120.0, updated_at=124.0, state=UploadState.COMPLETE, length=5),
            make_upload(created_at=50.0, updated_at=130.0, state=UploadState.FAILED),
            make_upload(created_at=101.0, updated_at=101.0, state=UploadState.RECEIVING),
            make_upload(created_at=60.0, updated_at=105.0, state=UploadState.ABORTED),
            make_upload(created_at=70.0, updated_at=140.0, state=UploadState.EXPIRED),
        ):
            await catalog.insert(upload)
        assert await catalog.activity(100.0) == Activity(
            started=2,
            completed=2,
            failed=1,
            aborted=1,
            expired=1,
            completed_bytes=12,
            completed_seconds=24.0,
        )
        assert await catalog.activity(1000.0) == Activity()

    async def test_ping(self, catalog: Catalog) -> None:
        await catalog.ping()
