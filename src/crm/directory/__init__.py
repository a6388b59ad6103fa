"""The contacts directory: what spans a contact and its sign-in identities. Searching contacts by
the phones and emails they sign in with, and erasing a contact with everything that hangs off it
(identities, codes, sessions, messages). Above both contacts and identities; neither imports it."""
