"""Public, unauthenticated documents: the JWT verification keys."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["Operations"])
