"""Serves contact pictures from the local media store: `GET /media/{name}`, no credential.

The random name is the only key (128 bits, see crm.media), so the URL can sit in an <img> of
any app. A name is immutable, hence the year-long cache; the type was checked from the content
when stored, and the headers keep a browser from reading the bytes as anything else.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.responses import Response

from crm import media
from crm.api.deps import RuntimeDep
from crm.errors import NotFound

router = APIRouter(tags=["Media"])

_HEADERS = {
    "cache-control": "public, max-age=31536000, immutable",
    "content-security-policy": "default-src 'none'; sandbox",
    # Apps on other origins show the picture in an <img>.
    "cross-origin-resource-policy": "cross-origin",
}


# Not an API operation but what `avatar_url` points at (an <img> source): left out of the
# OpenAPI document, whose generated clients have no use for an image response.
@router.get("/media/{name}", response_class=Response, include_in_schema=False)
async def get_media(
    name: Annotated[str, Path(max_length=64, description="The name in `avatar_url`.")],
    runtime: RuntimeDep,
) -> Response:
    if not media.valid_name(name):
        raise NotFound()
    data = await media.media_store(runtime.settings).get(name)
    if data is None:
        raise NotFound()
    content_type = media.CONTENT_TYPES[name.rsplit(".", 1)[1]]
    return Response(data, media_type=content_type, headers=_HEADERS)
