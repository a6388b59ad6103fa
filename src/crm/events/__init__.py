"""Events: what happened to a contact, kept for a while and delivered to signed webhooks."""
