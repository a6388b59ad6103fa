"""The Self-Service API (`/self-service/v1` and `/v2`): apps and portals acting for one contact."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["Self-Service"])
