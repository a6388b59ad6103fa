"""`crm keys rotate-signing`: add a new JWT signing key; the old one stays published until its tokens expire."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from crm.cli.common import JsonOption, console, print_json, run_in_session
from crm.cli.keys import app as keys_app

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from crm.runtime import Runtime


def register(app: typer.Typer) -> None:
    """Attach the signing-key commands to the `crm keys` app."""

    @app.command("rotate-signing")
    def rotate_signing(as_json: bool = JsonOption) -> None:
        """Start signing access tokens with a new key (running servers switch within a minute)."""
        from crm.identities import signing

        async def work(runtime: Runtime, session: AsyncSession) -> str:
            return await signing.rotate(session, runtime.clock, runtime.secret)

        kid = run_in_session(work)
        if as_json:
            print_json({"kid": kid})
            return
        console.print(
            f"New signing key {kid}; the previous key stays published until its tokens expire."
        )


register(keys_app)
