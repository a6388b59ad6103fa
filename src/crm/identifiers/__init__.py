"""The values people are reached and sign in by: countries, phone numbers and emails, normalised
and masked. Below both contacts and identities, importing neither."""
