"""The boto3 binding of :class:`~chunkd.storage.s3api.S3API`, run on a thread pool.

Why boto3 and not aiobotocore: aiobotocore pins exact botocore releases, which fights every
other AWS-adjacent package (moto and boto3 included); boto3's client is thread-safe; and one
executor hop is noise beside a multi-megabyte part upload.

A ``CompleteMultipartUpload`` (or ``UploadPartCopy``) that answers ``200 OK`` with an
``<Error>`` body is turned by botocore into a retried 500 and finally a ``ClientError``, hence
an :class:`~chunkd.storage.s3api.S3Error` here; a reply without an ``ETag`` is refused too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, TypeVar

from chunkd.storage.s3api import MultipartInfo, NoSuchKey, NoSuchUpload, PartInfo, S3Error

_T = TypeVar("_T")
_READ_CHUNK = 256 * 1024
_PAGE = 1000  # S3's own page size for ListParts, ListObjectsV2, ListMultipartUploads


class BotoS3API:
    """:class:`S3API` over one thread-safe boto3 client, called on a private thread pool."""

    def __init__(
        self,
        *,
        bucket: str,
        endpoint: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        threads: int = 16,
        attempts: int = 5,
    ) -> None:
        import boto3
        from botocore.config import Config

        config = Config(
            region_name=region,
            signature_version="s3v4",
            retries={"max_attempts": attempts, "mode": "standard"},
            max_pool_connections=threads,
            # Path-style URLs and no SDK-added checksums: what MinIO, Ceph RGW and R2 accept.
            # Parts still carry the CRC32C chunkd computes while the bytes stream in.
            s3={"addressing_style": "path" if endpoint else "auto"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=config,
        )
        self._bucket = bucket
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="chunkd-s3")

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._client.close()

    async def _call(self, function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        from botocore.exceptions import ClientError

        def call() -> _T:
            try:
                return function(*args, **kwargs)
            except ClientError as error:
                raise _translate(error) from error

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def head_bucket(self) -> None:
        await self._call(self._client.head_bucket, Bucket=self._bucket)

    async def create_multipart_upload(self, key: str, *, checksums: bool) -> str:
        extra = {"ChecksumAlgorithm": "CRC32C"} if checksums else {}
        reply = await self._call(
            self._client.create_multipart_upload, Bucket=self._bucket, Key=key, **extra
        )
        return str(reply["UploadId"])

    async def upload_part(
        self, key: str, upload_id: str, number: int, body: IO[bytes], crc32c: str | None
    ) -> None:
        extra = {"ChecksumAlgorithm": "CRC32C", "ChecksumCRC32C": crc32c} if crc32c else {}
        await self._call(
            self._client.upload_part,
            Bucket=self._bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
            **extra,
        )

    async def upload_part_copy(
        self, key: str, upload_id: str, number: int, source: str, first: int, last: int
    ) -> PartInfo:
        reply = await self._call(
            self._client.upload_part_copy,
            Bucket=self._bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            CopySource={"Bucket": self._bucket, "Key": source},
            CopySourceRange=f"bytes={first}-{last}",
        )
        result = reply.get("CopyPartResult", {})
        if not result.get("ETag"):
            raise S3Error("InvalidReply", f"UploadPartCopy of {key} part {number}: no ETag")
        return PartInfo(number, last - first + 1, str(result["ETag"]), result.get("ChecksumCRC32C"))

    async def list_parts(self, key: str, upload_id: str) -> list[PartInfo]:
        parts: list[PartInfo] = []
        marker = 0
        while True:
            page = await self._call(
                self._client.list_parts,
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                MaxParts=_PAGE,
                PartNumberMarker=marker,
            )
            for part in page.get("Parts", []):
                parts.append(
                    PartInfo(
                        int(part["PartNumber"]),
                        int(part["Size"]),
                        str(part["ETag"]),
                        part.get("ChecksumCRC32C"),
                    )
                )
            if not page.get("IsTruncated"):
                return parts
            marker = int(page["NextPartNumberMarker"])

    async def complete_multipart_upload(
        self, key: str, upload_id: str, parts: Sequence[PartInfo]
    ) -> None:
        listed: list[dict[str, Any]] = []
        for part in parts:
            entry: dict[str, Any] = {"PartNumber": part.number, "ETag": part.etag}
            if part.checksum:
                entry["ChecksumCRC32C"] = part.checksum
            listed.append(entry)
        reply = await self._call(
            self._client.complete_multipart_upload,
            Bucket=self._bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": listed},
        )
        if "Error" in reply or not reply.get("ETag"):
            raise S3Error("InvalidReply", f"CompleteMultipartUpload of {key}: {reply!r:.200}")

    async def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        await self._call(
            self._client.abort_multipart_upload, Bucket=self._bucket, Key=key, UploadId=upload_id
        )

    async def list_multipart_uploads(self, prefix: str) -> list[MultipartInfo]:
        found: list[MultipartInfo] = []
        markers: dict[str, str] = {}
        while True:
            page = await self._call(
                self._client.list_multipart_uploads,
                Bucket=self._bucket,
                Prefix=prefix,
                MaxUploads=_PAGE,
                **markers,
            )
            for upload in page.get("Uploads", []):
                found.append(
                    MultipartInfo(
                        str(upload["Key"]),
                        str(upload["UploadId"]),
                        upload["Initiated"].timestamp(),
                    )
                )
            if not page.get("IsTruncated"):
                return found
            markers = {
                "KeyMarker": page["NextKeyMarker"],
                "UploadIdMarker": page["NextUploadIdMarker"],
            }

    async def put_object(self, key: str, body: IO[bytes] | bytes, crc32c: str | None) -> None:
        extra = {"ChecksumAlgorithm": "CRC32C", "ChecksumCRC32C": crc32c} if crc32c else {}
        await self._call(self._client.put_object, Bucket=self._bucket, Key=key, Body=body, **extra)

    async def get_object(self, key: str, first: int, last: int) -> AsyncIterator[bytes]:
        reply = await self._call(
            self._client.get_object, Bucket=self._bucket, Key=key, Range=f"bytes={first}-{last}"
        )
        body = reply["Body"]
        try:
            while chunk := await self._call(body.read, _READ_CHUNK):
                yield chunk
        finally:
            body.close()

    async def head_object(self, key: str) -> int | None:
        try:
            reply = await self._call(self._client.head_object, Bucket=self._bucket, Key=key)
        except NoSuchKey:
            return None
        return int(reply["ContentLength"])

    async def list_objects(self, prefix: str) -> list[tuple[str, int, float]]:
        found: list[tuple[str, int, float]] = []
        token: dict[str, str] = {}
        while True:
            page = await self._call(
                self._client.list_objects_v2, Bucket=self._bucket, Prefix=prefix, **token
            )
            found.extend(
                (str(item["Key"]), int(item["Size"]), item["LastModified"].timestamp())
                for item in page.get("Contents", [])
            )
            if not page.get("IsTruncated"):
                return found
            token = {"ContinuationToken": page["NextContinuationToken"]}

    async def delete_objects(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), _PAGE):
            batch = [{"Key": key} for key in keys[start : start + _PAGE]]
            reply = await self._call(
                self._client.delete_objects,
                Bucket=self._bucket,
                Delete={"Objects": batch, "Quiet": True},
            )
            if reply.get("Errors"):
                error = reply["Errors"][0]
                raise S3Error(str(error.get("Code")), f"DeleteObjects: {error.get('Message')}")


def _translate(error: Any) -> S3Error:
    details = error.response.get("Error", {})
    code = str(details.get("Code", "Unknown"))
    message = str(details.get("Message", error))
    if code == "NoSuchUpload":
        return NoSuchUpload(code, message)
    if code in ("NoSuchKey", "404", "NotFound"):
        return NoSuchKey(code, message)
    return S3Error(code, message)
