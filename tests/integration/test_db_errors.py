"""Database errors as they reach the logs: never with the statement's parameters."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from crm.runtime import Runtime


async def test_database_error_text_does_not_quote_parameters(runtime: Runtime) -> None:
    # The last-resort handler logs an unexpected error with its text; an outbox insert's
    # parameters hold the one-time code or reset token being sent.
    secret = "code-812279-in-a-message-body"
    with pytest.raises(DBAPIError) as caught:
        async with runtime.engine.connect() as connection:
            await connection.execute(
                text("SELECT no_such_column FROM outbox_messages WHERE body_text = :body"),
                {"body": secret},
            )
    assert secret not in str(caught.value)
