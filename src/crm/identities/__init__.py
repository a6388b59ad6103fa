"""Sign-in identities, one-time codes, sessions, refresh tokens and access tokens."""
