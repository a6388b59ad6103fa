"""Pure security functions: tokens, encryption at rest, one-time codes, passwords and JWTs."""
