"""crm: a self-hostable customer-contacts server with self-service sign-in."""

__version__ = "0.1.0"
