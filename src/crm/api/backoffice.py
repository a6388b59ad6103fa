"""The Back-Office API (`/backoffice/v1`): the business's servers and agents, with a secret key."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["Back-Office"])
