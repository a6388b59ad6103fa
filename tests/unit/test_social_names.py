"""Names taken from a provider's ID token follow the free-text rule of every other surface."""

from __future__ import annotations

from crm.contacts.contact_fields import ContactFields
from crm.social.signin import _names


def test_claims_are_cleaned_and_a_name_with_an_invisible_character_is_left_out() -> None:
    claims = {"given_name": " Ame\u0301lie ", "family_name": "Lee\u200b", "name": "Full Name"}
    none = ContactFields()
    assert _names(claims, none) == ContactFields(first_name="Am\u00e9lie")
    assert _names({"name": "x" * 201}, none) == none
    assert _names({"name": "Ann Lee"}, none) == ContactFields(first_name="Ann Lee")
    # What the app or the provider's form gave wins over the claims.
    given = ContactFields(first_name="Given")
    assert _names(claims, given) == given
