"""Words that `--help` quotes from modules the commands import only when they run.

Copied here so that printing help (and registering the commands) imports no database code;
tests/unit/test_cli_imports.py checks each copy against its source.
"""

from __future__ import annotations

# crm.contacts.importer.SCALAR_COLUMNS and JSON_COLUMNS: the columns of an import file.
CONTACT_SCALAR_COLUMNS = (
    "id",
    "code",
    "contact_type",
    "title",
    "first_name",
    "middle_name",
    "last_name",
    "company_name",
    "email_address",
    "language_code",
    "country_of_agreement",
    "service_acceptance",
    "email_opt_out",
    "sms_opt_out",
)
CONTACT_JSON_COLUMNS = ("phones", "addresses", "custom_fields", "demographics", "tags")

# crm.messaging.service.STATUSES: where an outbox message stands.
OUTBOX_STATUSES = ("queued", "sending", "sent", "failed", "cancelled", "possibly_sent")
