"""The contact-field vocabulary: what "not given" means, and the name lists read from it."""

from __future__ import annotations

import pickle

import pytest

from crm import documents
from crm.contacts import contact_fields as cf
from crm.contacts.models import Contact


def test_a_member_not_given_is_unset_and_none_is_a_value() -> None:
    fields = cf.ContactFields(first_name="Ann", last_name=None)
    assert list(fields.given()) == [("first_name", "Ann"), ("last_name", None)]
    assert fields.title is cf.UNSET and cf.or_none(fields.title) is None
    assert fields.only(["last_name"]) == cf.ContactFields(last_name=None)
    assert fields.as_dict() == {"first_name": "Ann", "last_name": None}
    assert cf.unset_if_none(None) is cf.UNSET and cf.unset_if_none("x") == "x"


def test_fields_cannot_change_once_built() -> None:
    fields = cf.ContactFields(first_name="Ann")
    with pytest.raises(AttributeError):
        fields.first_name = "Bob"  # type: ignore[misc]
    assert fields._replace(first_name="Bob").first_name == "Bob"
    assert fields.first_name == "Ann"


def test_fields_survive_a_worker_process_round_trip() -> None:
    # A validating worker process sends an import's prepared fields back pickled.
    fields = cf.ContactFields(email_address="a@example.com", service_acceptance=True)
    back = pickle.loads(pickle.dumps(fields))
    assert back == fields and back.title is cf.UNSET


def test_every_column_member_is_a_column_of_contacts() -> None:
    columns = set(Contact.__table__.columns.keys())
    assert set(cf.COLUMN_FIELDS) | set(cf.CONSENT_FLAGS) <= columns
    assert set(cf.SEARCH_FORMS.values()) <= columns
    assert cf.PHONES in cf.FIELD_NAMES and cf.PHONES not in columns
    assert set(cf.FIELD_NAMES) == {*cf.COLUMN_FIELDS, *cf.CONSENT_FLAGS, cf.PHONES}


def test_the_lists_the_service_and_documents_read_come_from_the_declarations() -> None:
    assert cf.LIST_FIELDS == (
        "addresses",
        "custom_fields",
        "tags",
        "sub_industries",
        "loyalty_identifiers",
    )
    assert cf.CONSENT_FLAGS == ("service_acceptance", "email_opt_out", "sms_opt_out")
    assert documents.DOCUMENT_FIELDS == cf.DOCUMENT_FIELDS
    assert set(documents.UNIQUE_NUMBERS) | set(documents.COUNTRIES) <= set(cf.DOCUMENT_FIELDS)
