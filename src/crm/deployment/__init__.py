"""Checks of a deployment's configuration: run before serving (fail fast) and by `crm doctor`."""
