"""The contact's picture on both APIs: checked by content, stored and served under a random name,
replaced and removed with its file, and refused when too large, of another type, or lying."""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from crm import media
from crm.app import create_app
from crm.runtime import Runtime
from crm.tenants import service as tenants
from crm.tenants.schemas import CreatedTenant
from tests.api.test_contact_addresses import needs_reference, signed_in, sk
from tests.api.test_selfservice_reference_schemas import _schema
from tests.conftest import base_settings

SS = "/self-service/v2/contacts"
BO = "/backoffice/v1/contacts"
MAX = 8192


def png(width: int = 1, height: int = 1) -> bytes:
    """A real PNG of grey pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 \x18\x00\x00\x00" + b"\x00" * 32
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


@pytest.fixture(scope="module")
async def world(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Runtime, Path]]:
    folder = tmp_path_factory.mktemp("media")
    rt = Runtime.build(
        base_settings(database_url=database_url, media_dir=folder, avatar_max_bytes=MAX)
    )
    yield rt, folder
    await rt.close()


@pytest.fixture
async def pclient(world: tuple[Runtime, Path]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(world[0].settings, runtime=world[0])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def ptenant(world: tuple[Runtime, Path]) -> CreatedTenant:
    rt = world[0]
    async with rt.sessions() as session:
        created = await tenants.create_tenant(session, rt.clock, "Pictures Ltd")
        await session.commit()
    return created


def files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def upload(data: bytes, content_type: str = "image/png", field: str = "image") -> dict[str, Any]:
    return {"files": {field: ("me.png", data, content_type)}}


def served_path(url: str) -> str:
    return url.removeprefix("http://127.0.0.1:8000")


@needs_reference
async def test_upload_serve_replace_and_remove(
    pclient: httpx.AsyncClient, world: tuple[Runtime, Path], ptenant: CreatedTenant
) -> None:
    rt, folder = world
    contact_id, auth = await signed_in(pclient, rt, ptenant)
    before = files(folder)
    put = await pclient.put(f"{SS}/{contact_id}/image", headers=auth, **upload(png(3, 2)))
    assert put.status_code == 200, put.text
    jsonschema.validate(put.json(), _schema("/self-service/v2/contacts/{id}/image", "put", "200"))
    url = put.json()["avatar_url"]
    name = url.rsplit("/", 1)[1]
    # A random name: nothing of the contact in it, and the file is there.
    assert media.valid_name(name) and contact_id not in url
    assert files(folder) - before == {name}

    served = await pclient.get(served_path(url))
    assert served.status_code == 200 and served.content == png(3, 2)
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert "immutable" in served.headers["cache-control"]
    assert "max-age=31536000" in served.headers["cache-control"]
    profile = await pclient.get(f"{SS}/{contact_id}", headers=auth)
    assert profile.json()["avatar_url"] == url
    jsonschema.validate(profile.json(), _schema("/self-service/v2/contacts/{id}", "get", "200"))

    # A new picture: a new name, the old file gone, the old URL no longer served.
    again = await pclient.put(
        f"{SS}/{contact_id}/image", headers=auth, **upload(JPEG, "image/jpeg")
    )
    assert again.status_code == 200, again.text
    new_url = again.json()["avatar_url"]
    assert new_url != url and new_url.endswith(".jpg")
    assert name not in files(folder)
    assert (await pclient.get(served_path(url))).status_code == 404
    jpeg = await pclient.get(served_path(new_url))
    assert jpeg.headers["content-type"] == "image/jpeg"

    deleted = await pclient.delete(f"{SS}/{contact_id}/image", headers=auth)
    assert deleted.status_code == 204
    assert files(folder) == before
    assert (await pclient.get(served_path(new_url))).status_code == 404
    assert "avatar_url" not in (await pclient.get(f"{SS}/{contact_id}", headers=auth)).json()
    audit = await pclient.get(f"{BO}/{contact_id}/audit", headers=sk(ptenant, "secret_test"))
    actions = [e["action"] for e in audit.json()["content"]]
    assert actions.count("PICTURE_SET") == 2 and "PICTURE_REMOVED" in actions


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (SVG, "image/svg+xml", 400, "PICTURE_TYPE_NOT_ALLOWED"),
        (SVG, "image/png", 400, "PICTURE_TYPE_NOT_ALLOWED"),
        (b"<html><script>alert(1)</script></html>", "image/png", 400, "PICTURE_TYPE_NOT_ALLOWED"),
        (b"GIF89a" + b"\x00" * 20, "image/gif", 400, "PICTURE_TYPE_NOT_ALLOWED"),
        (b"", "image/png", 400, "PICTURE_TYPE_NOT_ALLOWED"),
        (png(), "image/jpeg", 400, "PICTURE_TYPE_MISMATCH"),
        (JPEG, "text/html", 400, "PICTURE_TYPE_MISMATCH"),
        (png() + b"\x00" * MAX, "image/png", 413, "PICTURE_TOO_LARGE"),
        (png() + b"\x00" * (MAX + 64 * 1024), "image/png", 413, "PAYLOAD_TOO_LARGE"),
    ],
)
async def test_refused_pictures_leave_nothing_behind(
    pclient: httpx.AsyncClient,
    world: tuple[Runtime, Path],
    ptenant: CreatedTenant,
    data: bytes,
    content_type: str,
    status: int,
    code: str,
) -> None:
    folder = world[1]
    before = files(folder)
    created = await pclient.post(BO, json={"first_name": "Pic"}, headers=sk(ptenant))
    ref = created.json()["id"]
    response = await pclient.put(
        f"{BO}/{ref}/image", headers=sk(ptenant), **upload(data, content_type)
    )
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert files(folder) == before
    assert (await pclient.get(f"{BO}/{ref}", headers=sk(ptenant))).json()["avatar_url"] is None


async def test_declared_octet_stream_and_webp_are_taken_by_content(
    pclient: httpx.AsyncClient, world: tuple[Runtime, Path], ptenant: CreatedTenant
) -> None:
    created = await pclient.post(BO, json={"first_name": "Web"}, headers=sk(ptenant))
    ref = created.json()["id"]
    response = await pclient.put(
        f"{BO}/{ref}/image", headers=sk(ptenant), **upload(WEBP, "application/octet-stream")
    )
    assert response.status_code == 200, response.text
    url = response.json()["avatar_url"]
    assert url.endswith(".webp")
    contact = (await pclient.get(f"{BO}/{ref}", headers=sk(ptenant))).json()
    assert contact["avatar_url"] == url
    served = await pclient.get(served_path(url))
    assert served.headers["content-type"] == "image/webp"


async def test_missing_or_extra_parts_are_refused(
    pclient: httpx.AsyncClient, ptenant: CreatedTenant
) -> None:
    created = await pclient.post(BO, json={"first_name": "Nop"}, headers=sk(ptenant))
    path = f"{BO}/{created.json()['id']}/image"
    wrong_field = await pclient.put(path, headers=sk(ptenant), **upload(png(), field="file"))
    assert wrong_field.status_code == 400 and wrong_field.json()["code"] == "PICTURE_MISSING"
    as_json = await pclient.put(path, headers=sk(ptenant), json={"image": "aGVsbG8="})
    assert as_json.status_code == 400 and as_json.json()["code"] == "PICTURE_MISSING"
    two = await pclient.put(
        path,
        headers=sk(ptenant),
        files=[("image", ("a.png", png(), "image/png")), ("image", ("b.png", png(), "image/png"))],
    )
    assert two.status_code == 400, two.text
    garbled = await pclient.put(
        path,
        headers={**sk(ptenant), "content-type": "multipart/form-data; boundary=xyz"},
        content=b'--xyz\r\nContent-Disposition: form-data; name="image"\r\n\r\nnot closed',
    )
    assert garbled.status_code == 400, garbled.text


async def test_others_cannot_set_or_remove_a_picture(
    pclient: httpx.AsyncClient, world: tuple[Runtime, Path], ptenant: CreatedTenant
) -> None:
    rt = world[0]
    owner_id, owner = await signed_in(pclient, rt, ptenant)
    _, other = await signed_in(pclient, rt, ptenant)
    assert (await pclient.put(f"{SS}/{owner_id}/image", headers=owner, **upload(png()))).is_success
    hijack = await pclient.put(f"{SS}/{owner_id}/image", headers=other, **upload(JPEG))
    assert hijack.status_code == 404 and hijack.json()["code"] == "CONTACT_NOT_FOUND"
    removal = await pclient.delete(f"{SS}/{owner_id}/image", headers=other)
    assert removal.status_code == 404
    async with rt.sessions() as session:
        stranger = await tenants.create_tenant(session, rt.clock, "Stranger Pics")
        await session.commit()
    foreign = await pclient.delete(f"{BO}/{owner_id}/image", headers=sk(stranger, "secret_test"))
    assert foreign.status_code == 404
    kept = (await pclient.get(f"{SS}/{owner_id}", headers=owner)).json()
    assert kept["avatar_url"].endswith(".png")


@pytest.mark.parametrize(
    "path",
    [
        "/media/..%2f..%2fcrm.db",
        "/media/%2e%2e",
        "/media/secret.txt",
        "/media/" + "A" * 32 + ".png",
        "/media/" + "a" * 32 + ".svg",
        "/media/" + "a" * 32 + ".png%00.txt",
        "/media/" + "a" * 32 + ".png",
    ],
)
async def test_media_serves_only_stored_picture_names(
    pclient: httpx.AsyncClient, world: tuple[Runtime, Path], path: str
) -> None:
    folder = world[1]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "secret.txt").write_text("not a picture")
    response = await pclient.get(path)
    assert response.status_code in (400, 404), response.text
    assert b"not a picture" not in response.content


async def test_erasure_removes_the_picture_file(
    pclient: httpx.AsyncClient, world: tuple[Runtime, Path], ptenant: CreatedTenant
) -> None:
    rt, folder = world
    contact_id, auth = await signed_in(pclient, rt, ptenant)
    put = await pclient.put(f"{SS}/{contact_id}/image", headers=auth, **upload(png()))
    name = put.json()["avatar_url"].rsplit("/", 1)[1]
    assert name in files(folder)
    assert (await pclient.delete(f"{SS}/{contact_id}", headers=auth)).status_code == 200
    assert name not in files(folder)


async def test_a_rolled_back_unit_of_work_removes_what_it_wrote(tmp_path: Path) -> None:
    store = media.LocalMediaStore(tmp_path, "http://x/media")
    kept, written = media.new_name("png"), media.new_name("png")
    await store.put(kept, b"old")
    await store.put(written, b"new")
    info: dict[str, Any] = {}
    media.record(info, media.WRITTEN, written)
    media.record(info, media.REMOVED, kept)
    await media.settle(info, store, committed=False)
    # Rolled back: the new file goes, the one still referred to stays.
    assert await store.get(written) is None and await store.get(kept) == b"old"
    assert info == {}
    with pytest.raises(ValueError):
        await store.put("../escape.png", b"x")
    assert not (tmp_path.parent / "escape.png").exists()


async def test_back_office_lists_show_the_avatar(
    pclient: httpx.AsyncClient, ptenant: CreatedTenant
) -> None:
    with_picture = await pclient.post(BO, json={"first_name": "Has"}, headers=sk(ptenant))
    await pclient.post(BO, json={"first_name": "Hasnt"}, headers=sk(ptenant))
    put = await pclient.put(
        f"{BO}/{with_picture.json()['id']}/image", headers=sk(ptenant), **upload(png())
    )
    listed = await pclient.get(BO, headers=sk(ptenant))
    assert listed.status_code == 200, listed.text
    avatars = {c["first_name"]: c["avatar_url"] for c in listed.json()["content"]}
    assert avatars["Has"] == put.json()["avatar_url"] and avatars["Hasnt"] is None
