"""Tenants (businesses), their applications, API keys and per-tenant integrations."""
