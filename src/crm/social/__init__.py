"""Sign-in with Google, Apple, Facebook and any OpenID Connect provider (ID tokens, redirects)."""
