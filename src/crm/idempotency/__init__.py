"""Idempotency-Key handling for POST operations: a retried request gets the first answer."""
