"""The contact record: a person or company, its phones, addresses, consent and audit trail."""
