"""The S3-compatible picture backend: its Signature Version 4 against AWS's published examples,
and pictures stored, served, replaced and removed through the API with a real S3-compatible
server on a loopback port (moto_server, when installed)."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crm import media
from crm.app import create_app
from crm.media_s3 import S3MediaStore, sign_v4
from crm.runtime import Runtime
from crm.tenants import service as tenants
from tests.api.test_contact_pictures import JPEG, png, upload
from tests.conftest import base_settings

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
MAY_24 = dt.datetime(2013, 5, 24, tzinfo=dt.UTC)


def _signature(headers: dict[str, str]) -> str:
    return headers["authorization"].rsplit("Signature=", 1)[1]


def test_signature_matches_aws_get_object_example() -> None:
    signed = sign_v4(
        method="GET",
        url="https://examplebucket.s3.amazonaws.com/test.txt",
        headers={"Range": "bytes=0-9"},
        payload_sha256=hashlib.sha256(b"").hexdigest(),
        access_key_id=AWS_KEY,
        secret_access_key=AWS_SECRET,
        region="us-east-1",
        now=MAY_24,
    )
    assert "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date," in signed["authorization"]
    assert _signature(signed) == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"


def test_signature_matches_aws_put_object_example() -> None:
    body = b"Welcome to Amazon S3."
    signed = sign_v4(
        method="PUT",
        url="https://examplebucket.s3.amazonaws.com/test$file.text",
        headers={
            "Date": "Fri, 24 May 2013 00:00:00 GMT",
            "x-amz-storage-class": "REDUCED_REDUNDANCY",
        },
        payload_sha256=hashlib.sha256(body).hexdigest(),
        access_key_id=AWS_KEY,
        secret_access_key=AWS_SECRET,
        region="us-east-1",
        now=MAY_24,
    )
    assert _signature(signed) == "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    beside = Path(sys.executable).with_name("moto_server")
    binary = str(beside) if beside.exists() else shutil.which("moto_server")
    if binary is None:
        pytest.skip("no S3-compatible server: moto_server is not installed")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.skip("moto_server did not start")
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
async def s3_runtime(database_url: str, s3_endpoint: str) -> AsyncIterator[Runtime]:
    bucket = f"pictures-{int(time.time() * 1000)}"
    signed = sign_v4(
        method="PUT",
        url=f"{s3_endpoint}/{bucket}",
        headers={},
        payload_sha256=hashlib.sha256(b"").hexdigest(),
        access_key_id="test",
        secret_access_key="test",
        region="us-east-1",
        now=dt.datetime.now(dt.UTC),
    )
    async with httpx.AsyncClient() as client:
        created = await client.put(f"{s3_endpoint}/{bucket}", headers=signed)
    assert created.status_code == 200, created.text
    rt = Runtime.build(
        base_settings(
            database_url=database_url,
            media_backend="s3",
            media_s3_endpoint=s3_endpoint,
            media_s3_bucket=bucket,
            media_s3_access_key_id="test",
            media_s3_secret_access_key="test",
        )
    )
    yield rt
    await rt.close()


async def test_pictures_live_in_the_bucket(s3_runtime: Runtime) -> None:
    rt = s3_runtime
    store = media.media_store(rt.settings)
    assert isinstance(store, S3MediaStore)
    async with rt.sessions() as session:
        tenant = await tenants.create_tenant(session, rt.clock, "Bucket Ltd")
        await session.commit()
    headers = {"api_key": tenant.keys["secret_live"]}
    app = create_app(rt.settings, runtime=rt)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        ref = (await client.post("/backoffice/v1/contacts", json={}, headers=headers)).json()["id"]
        first = await client.put(
            f"/backoffice/v1/contacts/{ref}/image", headers=headers, **upload(png(2, 2))
        )
        assert first.status_code == 200, first.text
        name = first.json()["avatar_url"].rsplit("/", 1)[1]
        assert await store.get(name) == png(2, 2)
        served = await client.get(f"/media/{name}")
        assert served.status_code == 200 and served.content == png(2, 2)
        assert served.headers["content-type"] == "image/png"

        second = await client.put(
            f"/backoffice/v1/contacts/{ref}/image", headers=headers, **upload(JPEG, "image/jpeg")
        )
        new_name = second.json()["avatar_url"].rsplit("/", 1)[1]
        # The replaced object is gone from the bucket once the change committed.
        assert await store.get(name) is None and await store.get(new_name) == JPEG
        erased = await client.delete(f"/backoffice/v1/contacts/{ref}", headers=headers)
        assert erased.status_code == 204
        assert await store.get(new_name) is None
        assert (await client.get(f"/media/{new_name}")).status_code == 404


async def test_an_unreachable_bucket_is_a_503_and_nothing_is_kept(database_url: str) -> None:
    rt = Runtime.build(
        base_settings(
            database_url=database_url,
            media_backend="s3",
            media_s3_endpoint=f"http://127.0.0.1:{_free_port()}",
            media_s3_bucket="nowhere",
            media_s3_access_key_id="k",
            media_s3_secret_access_key="s",
        )
    )
    try:
        async with rt.sessions() as session:
            tenant = await tenants.create_tenant(session, rt.clock, "Offline Ltd")
            await session.commit()
        headers: Any = {"api_key": tenant.keys["secret_live"]}
        app = create_app(rt.settings, runtime=rt)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            ref = (await client.post("/backoffice/v1/contacts", json={}, headers=headers)).json()[
                "id"
            ]
            response = await client.put(
                f"/backoffice/v1/contacts/{ref}/image", headers=headers, **upload(png())
            )
            assert response.status_code == 503, response.text
            assert response.json()["code"] == "MEDIA_STORE_UNAVAILABLE"
            contact = await client.get(f"/backoffice/v1/contacts/{ref}", headers=headers)
            assert contact.json()["avatar_url"] is None
    finally:
        await rt.close()


def test_s3_settings_must_be_complete() -> None:
    with pytest.raises(ValueError, match="CRM_MEDIA_S3_BUCKET"):
        base_settings(media_backend="s3", media_s3_endpoint="http://127.0.0.1:1")
