"""The S3-compatible media backend (AWS S3, MinIO, Ceph, Garage...): objects in one bucket,
path-style URLs, requests signed with AWS Signature Version 4 over httpx.

Signing by hand keeps the dependency list as it is (httpx is already one); the signature is
checked against AWS's published example in the tests.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

import httpx

from crm.errors import ServiceUnavailable
from crm.media import CONTENT_TYPES

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_TIMEOUT = httpx.Timeout(10.0)


class MediaStoreUnavailable(ServiceUnavailable):
    code = "MEDIA_STORE_UNAVAILABLE"
    message = "The picture store is unavailable; nothing was changed. Try again shortly."


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign_v4(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    payload_sha256: str,
    access_key_id: str,
    secret_access_key: str,
    region: str,
    now: dt.datetime,
    service: str = "s3",
) -> dict[str, str]:
    """`headers` plus x-amz-date, x-amz-content-sha256 and the Authorization of SigV4."""
    parts = urlsplit(url)
    stamp = now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    signed: dict[str, str] = {k.lower(): " ".join(v.split()) for k, v in headers.items()}
    signed["host"] = parts.netloc
    signed["x-amz-date"] = stamp
    signed["x-amz-content-sha256"] = payload_sha256
    names = sorted(signed)
    query = "&".join(
        sorted(
            f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
            for k, _, v in (pair.partition("=") for pair in parts.query.split("&") if pair)
        )
    )
    canonical = "\n".join(
        [
            method,
            quote(parts.path or "/", safe="/-_.~"),
            query,
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            payload_sha256,
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(
        _hmac(_hmac(_hmac(f"AWS4{secret_access_key}".encode(), day), region), service),
        "aws4_request",
    )
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out = {k: v for k, v in signed.items() if k != "host"}
    out["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return out


class S3MediaStore:
    """Pictures as objects `<bucket>/<name>`; the names are checked by the caller (crm.media)."""

    def __init__(
        self,
        *,
        endpoint: str,
        bucket: str,
        region: str,
        access_key_id: str,
        secret_access_key: str,
        base_url: str,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.bucket = bucket
        self.region = region
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.base_url = base_url.rstrip("/")

    async def _send(
        self, method: str, name: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        url = f"{self.endpoint}/{self.bucket}/{name}"
        signed = sign_v4(
            method=method,
            url=url,
            headers=headers or {},
            payload_sha256=hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
            region=self.region,
            now=dt.datetime.now(dt.UTC),
        )
        try:
            async with httpx.AsyncClient(timeout=_TIMEOUT, follow_redirects=False) as client:
                return await client.request(method, url, content=body or None, headers=signed)
        except httpx.HTTPError as exc:
            raise MediaStoreUnavailable() from exc

    async def put(self, name: str, data: bytes) -> None:
        content_type = CONTENT_TYPES[name.rsplit(".", 1)[-1]]
        response = await self._send("PUT", name, data, {"content-type": content_type})
        if response.status_code != 200:
            raise MediaStoreUnavailable(f"The picture store answered {response.status_code}.")

    async def get(self, name: str) -> bytes | None:
        response = await self._send("GET", name)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise MediaStoreUnavailable(f"The picture store answered {response.status_code}.")
        return response.content

    async def remove(self, name: str) -> None:
        response = await self._send("DELETE", name)
        if response.status_code not in (200, 204, 404):
            raise MediaStoreUnavailable(f"The picture store answered {response.status_code}.")

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"
