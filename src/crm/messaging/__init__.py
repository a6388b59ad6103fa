"""Outgoing messages: the outbox, the delivery worker, templates and the providers."""
