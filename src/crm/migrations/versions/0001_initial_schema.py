"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import crm.db

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "audit_events",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("contact_id", sa.String(length=36), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column(
            "fields",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_audit_events_contact",
            ["tenant_id", "mode", "contact_id", "created_at"],
            unique=False,
        )

    op.create_table(
        "idempotency_records",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response_body", sa.Text(), nullable=False),
        sa.Column("created_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "mode", "scope", "key", name=op.f("pk_idempotency_records")
        ),
    )
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idempotency_records_created_at"), ["created_at"], unique=False
        )

    op.create_table(
        "rate_counters",
        sa.Column("bucket", sa.String(length=200), nullable=False),
        sa.Column("window_start", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", "window_start", name=op.f("pk_rate_counters")),
    )
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("private_key_encrypted", sa.Text(), nullable=False),
        sa.Column(
            "public_jwk",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("retired_at", crm.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_signing_keys")),
    )
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
    )
    op.create_table(
        "applications",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "settings",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_applications_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applications")),
    )
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_applications_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "contacts",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("code", sa.String(length=36), nullable=False),
        sa.Column("code_norm", sa.String(length=36), nullable=True),
        sa.Column("contact_type", sa.String(length=10), nullable=False),
        sa.Column("title", sa.String(length=40), nullable=True),
        sa.Column("first_name", sa.String(length=200), nullable=True),
        sa.Column("middle_name", sa.String(length=200), nullable=True),
        sa.Column("last_name", sa.String(length=200), nullable=True),
        sa.Column("company_name", sa.String(length=200), nullable=True),
        sa.Column("first_name_norm", sa.String(length=200), nullable=True),
        sa.Column("last_name_norm", sa.String(length=200), nullable=True),
        sa.Column("company_name_norm", sa.String(length=200), nullable=True),
        sa.Column("email_address", sa.String(length=254), nullable=True),
        sa.Column("email_canonical", sa.String(length=254), nullable=True),
        sa.Column("language_code", sa.String(length=10), nullable=True),
        sa.Column("country_of_agreement", sa.String(length=3), nullable=True),
        sa.Column("gender", sa.String(length=20), nullable=True),
        sa.Column("birth_year", sa.Integer(), nullable=True),
        sa.Column("birth_month", sa.Integer(), nullable=True),
        sa.Column("birth_day", sa.Integer(), nullable=True),
        sa.Column(
            "addresses",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "custom_fields",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "tags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("referral_code", sa.String(length=64), nullable=True),
        sa.Column("service_acceptance", sa.Boolean(), nullable=False),
        sa.Column("email_opt_out", sa.Boolean(), nullable=False),
        sa.Column("sms_opt_out", sa.Boolean(), nullable=False),
        sa.Column("created_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("erased_at", crm.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_contacts_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_contacts")),
        sa.UniqueConstraint(
            "tenant_id", "mode", "code", name=op.f("uq_contacts_tenant_id_mode_code")
        ),
        sa.UniqueConstraint("tenant_id", "mode", "id", name=op.f("uq_contacts_tenant_id_mode_id")),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_contacts_tenant_mode_code_norm",
            ["tenant_id", "mode", "code_norm"],
            unique=False,
            postgresql_ops={"code_norm": "text_pattern_ops"},
            postgresql_include=["created_at", "id", "pk", "erased_at"],
            postgresql_where=sa.text("code_norm IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_contacts_tenant_mode_company",
            ["tenant_id", "mode", "company_name_norm"],
            unique=False,
            postgresql_ops={"company_name_norm": "text_pattern_ops"},
            postgresql_include=["created_at", "id", "pk", "erased_at"],
            postgresql_where=sa.text("company_name_norm IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_contacts_tenant_mode_created",
            ["tenant_id", "mode", "created_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_contacts_tenant_mode_email",
            ["tenant_id", "mode", "email_canonical"],
            unique=False,
            postgresql_ops={"email_canonical": "text_pattern_ops"},
            postgresql_include=["created_at", "id", "pk", "erased_at"],
            postgresql_where=sa.text("email_canonical IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_contacts_tenant_mode_first_last_name",
            ["tenant_id", "mode", "first_name_norm", "last_name_norm"],
            unique=False,
            postgresql_ops={
                "first_name_norm": "text_pattern_ops",
                "last_name_norm": "text_pattern_ops",
            },
            postgresql_include=["created_at", "id", "pk", "erased_at"],
            postgresql_where=sa.text("first_name_norm IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_contacts_tenant_mode_last_name",
            ["tenant_id", "mode", "last_name_norm", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_contacts_tenant_mode_last_name_prefix",
            ["tenant_id", "mode", "last_name_norm"],
            unique=False,
            postgresql_ops={"last_name_norm": "text_pattern_ops"},
            postgresql_include=["created_at", "id", "pk", "erased_at"],
            postgresql_where=sa.text("last_name_norm IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_contacts_tenant_mode_updated",
            ["tenant_id", "mode", "updated_at", "id"],
            unique=False,
        )

    op.create_table(
        "integrations",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("config_encrypted", sa.Text(), nullable=False),
        sa.Column("updated_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_integrations_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tenant_id", "channel", name=op.f("pk_integrations")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("application_id", sa.String(length=36), nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("display_prefix", sa.String(length=24), nullable=False),
        sa.Column("created_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", crm.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_api_keys_application_id_applications"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_api_keys_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(
            "ix_api_keys_tenant_kind_mode", ["tenant_id", "kind", "mode"], unique=False
        )

    op.create_table(
        "consent_events",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column(
            "contact_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("flag", sa.String(length=40), nullable=False),
        sa.Column("value", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("changed_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_pk"],
            ["contacts.pk"],
            name=op.f("fk_consent_events_contact_pk_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_events")),
    )
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_consent_events_contact_pk"), ["contact_pk"], unique=False
        )

    op.create_table(
        "contact_phones",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column(
            "contact_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("phone_type", sa.String(length=10), nullable=False),
        sa.Column("country_code", sa.String(length=3), nullable=True),
        sa.Column("number", sa.String(length=40), nullable=False),
        sa.Column("e164", sa.String(length=16), nullable=False),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_pk"],
            ["contacts.pk"],
            name=op.f("fk_contact_phones_contact_pk_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_phones")),
    )
    with op.batch_alter_table("contact_phones", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contact_phones_contact_pk"), ["contact_pk"], unique=False
        )
        batch_op.create_index(
            "ix_contact_phones_tenant_mode_e164", ["tenant_id", "mode", "e164"], unique=False
        )

    op.create_table(
        "identities",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column(
            "contact_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("provider", sa.String(length=10), nullable=False),
        sa.Column("identifier", sa.String(length=254), nullable=False),
        sa.Column("display", sa.String(length=254), nullable=False),
        sa.Column("country_code", sa.String(length=3), nullable=True),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("verified_at", crm.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", crm.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("locked_at", crm.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_pk"],
            ["contacts.pk"],
            name=op.f("fk_identities_contact_pk_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identities")),
        sa.UniqueConstraint(
            "tenant_id",
            "mode",
            "provider",
            "identifier",
            name=op.f("uq_identities_tenant_id_mode_provider_identifier"),
        ),
    )
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identities_contact_pk"), ["contact_pk"], unique=False)

    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column(
            "contact_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("purpose", sa.String(length=30), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=True),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", crm.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", crm.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("provider", sa.String(length=40), nullable=True),
        sa.Column("provider_message_id", sa.String(length=200), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", crm.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_pk"],
            ["contacts.pk"],
            name=op.f("fk_outbox_messages_contact_pk_contacts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_outbox_messages_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_messages")),
    )
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbox_messages_contact_pk"), ["contact_pk"], unique=False
        )
        batch_op.create_index(
            "ix_outbox_status_next_attempt", ["status", "next_attempt_at"], unique=False
        )
        batch_op.create_index(
            "ix_outbox_tenant_mode_created", ["tenant_id", "mode", "created_at"], unique=False
        )

    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("application_id", sa.String(length=36), nullable=True),
        sa.Column(
            "contact_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("refresh_hash", sa.String(length=64), nullable=False),
        sa.Column("previous_refresh_hash", sa.String(length=64), nullable=True),
        sa.Column("current_refresh_encrypted", sa.Text(), nullable=True),
        sa.Column("rotated_at", crm.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("idle_expires_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("absolute_expires_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", crm.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(length=40), nullable=True),
        sa.Column("user_agent", sa.String(length=400), nullable=True),
        sa.Column("ip_address", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_pk"],
            ["contacts.pk"],
            name=op.f("fk_sessions_contact_pk_contacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        sa.UniqueConstraint("refresh_hash", name=op.f("uq_sessions_refresh_hash")),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index("ix_sessions_contact", ["contact_pk", "revoked_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_sessions_previous_refresh_hash"), ["previous_refresh_hash"], unique=False
        )

    op.create_table(
        "otp_challenges",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("mode", sa.String(length=10), nullable=False),
        sa.Column("application_id", sa.String(length=36), nullable=True),
        sa.Column("identity_id", sa.String(length=36), nullable=False),
        sa.Column("purpose", sa.String(length=30), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("code_hmac", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("consumed_at", crm.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["identity_id"],
            ["identities.id"],
            name=op.f("fk_otp_challenges_identity_id_identities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_otp_challenges")),
    )
    with op.batch_alter_table("otp_challenges", schema=None) as batch_op:
        batch_op.create_index("ix_otp_challenges_code_hmac", ["code_hmac"], unique=False)
        batch_op.create_index(
            "ix_otp_challenges_identity_created", ["identity_id", "created_at"], unique=False
        )

    op.create_table(
        "retired_refresh_tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("retired_at", crm.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_retired_refresh_tokens_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_retired_refresh_tokens")),
    )
    with op.batch_alter_table("retired_refresh_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_retired_refresh_tokens_session_id"), ["session_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("retired_refresh_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_retired_refresh_tokens_session_id"))

    op.drop_table("retired_refresh_tokens")
    with op.batch_alter_table("otp_challenges", schema=None) as batch_op:
        batch_op.drop_index("ix_otp_challenges_identity_created")
        batch_op.drop_index("ix_otp_challenges_code_hmac")

    op.drop_table("otp_challenges")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sessions_previous_refresh_hash"))
        batch_op.drop_index("ix_sessions_contact")

    op.drop_table("sessions")
    with op.batch_alter_table("outbox_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_tenant_mode_created")
        batch_op.drop_index("ix_outbox_status_next_attempt")
        batch_op.drop_index(batch_op.f("ix_outbox_messages_contact_pk"))

    op.drop_table("outbox_messages")
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identities_contact_pk"))

    op.drop_table("identities")
    with op.batch_alter_table("contact_phones", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_phones_tenant_mode_e164")
        batch_op.drop_index(batch_op.f("ix_contact_phones_contact_pk"))

    op.drop_table("contact_phones")
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_events_contact_pk"))

    op.drop_table("consent_events")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_api_keys_tenant_kind_mode")
        batch_op.drop_index(batch_op.f("ix_api_keys_tenant_id"))

    op.drop_table("api_keys")
    op.drop_table("integrations")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_tenant_mode_updated")
        batch_op.drop_index(
            "ix_contacts_tenant_mode_last_name_prefix",
            postgresql_ops={"last_name_norm": "text_pattern_ops"},
            postgresql_include=["created_at", "id", "pk", "erased_at"],
            postgresql_where=sa.text("last_name_norm IS NOT NULL"),
        )
        batch_op.drop_index("ix_contacts_tenant_mode_last_name")
        batch_op.drop_index(
            "ix_contacts_tenant_mode_first_last_name",
            postgresql_ops={
                "first_name_norm": "text_pattern_ops",
                "last_name_norm": "text_pattern_ops",
            },
            postgresql_include=["created_at", "id", "pk", "erased_at"],
            postgresql_where=sa.text("first_name_norm IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_contacts_tenant_mode_email",
            postgresql_ops={"email_canonical": "text_pattern_ops"},
            postgresql_include=["created_at", "id", "pk", "erased_at"],
            postgresql_where=sa.text("email_canonical IS NOT NULL"),
        )
        batch_op.drop_index("ix_contacts_tenant_mode_created")
        batch_op.drop_index(
            "ix_contacts_tenant_mode_company",
            postgresql_ops={"company_name_norm": "text_pattern_ops"},
            postgresql_include=["created_at", "id", "pk", "erased_at"],
            postgresql_where=sa.text("company_name_norm IS NOT NULL"),
        )
        batch_op.drop_index(
            "ix_contacts_tenant_mode_code_norm",
            postgresql_ops={"code_norm": "text_pattern_ops"},
            postgresql_include=["created_at", "id", "pk", "erased_at"],
            postgresql_where=sa.text("code_norm IS NOT NULL"),
        )

    op.drop_table("contacts")
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_applications_tenant_id"))

    op.drop_table("applications")
    op.drop_table("tenants")
    op.drop_table("signing_keys")
    op.drop_table("rate_counters")
    with op.batch_alter_table("idempotency_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_records_created_at"))

    op.drop_table("idempotency_records")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_contact")

    op.drop_table("audit_events")
