"""The paging envelope every list answer shares: `{"paging": {...}, "content": [...]}`."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Paging(BaseModel):
    page: int = Field(description="1-based page number.")
    size: int = Field(description="Items per page.")
    total: int | None = Field(
        None,
        description="All matching items, or null: contact and audit lists count only when "
        "asked (include_total=true); the outbox always counts.",
    )
    has_more: bool = Field(description="Whether a next page has items.")
