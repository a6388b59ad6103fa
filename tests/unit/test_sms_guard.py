"""The SMS defence's pure parts: number ranges, allowed countries, tenant settings."""

from __future__ import annotations

import pytest

from crm.errors import InvalidCountry
from crm.identities.policy import from_settings, parse_sms_countries
from crm.smsguard.errors import CountryNotAllowed
from crm.smsguard.service import check_country, destination
from crm.tenants.schemas import tenant_setting_value, tenant_settings_from


def test_numbers_differing_in_their_last_digits_share_a_range() -> None:
    assert destination("+35799100123") == destination("+35799100999")
    assert destination("+35799100123").number_range == "+35799100"
    assert destination("+35799101123") != destination("+35799100123")
    assert destination("+447400123456").country == "GBR"
    assert destination("+447400123456", 4).number_range == "+44740012"


def test_a_short_number_keeps_a_digit_of_its_range() -> None:
    # A 4-digit national number with a tail of 8 is not "the whole country".
    assert destination("+3579947", 8).number_range == "+3579"


def test_sms_countries_are_validated_and_normalised() -> None:
    assert parse_sms_countries("cyp, GRC,CYP") == ("CYP", "GRC")
    assert parse_sms_countries(["ITA"]) == ("ITA",)
    for bad in ("CY", "CYP,XXX", "", " , "):
        with pytest.raises(InvalidCountry):
            parse_sms_countries(bad)


def test_sms_countries_unset_means_every_country_and_garbage_means_none() -> None:
    assert from_settings(None, "live").sms_countries is None
    assert from_settings({"sms_countries": "CYP,GRC"}, "live").sms_countries == ("CYP", "GRC")
    # An allow-list that cannot be read allows nothing rather than everything.
    assert from_settings({"sms_countries": "CYP,NOPE"}, "live").sms_countries == ()
    assert from_settings({"sms_countries": 42}, "live").sms_countries == ()


def test_check_country() -> None:
    check_country(None, "CYP")
    check_country(("CYP",), "CYP")
    check_country(("CYP",), None)  # not a phone: nothing to check
    with pytest.raises(CountryNotAllowed) as refused:
        check_country(("CYP", "GRC"), "NGA")
    assert refused.value.code == "COUNTRY_NOT_ALLOWED"
    assert refused.value.status_code == 400
    with pytest.raises(CountryNotAllowed):
        check_country((), "CYP")


def test_tenant_settings_are_checked() -> None:
    assert tenant_setting_value("sms_daily_limit", 0) == 0
    for bad in (-1, True, "100", 10_000_001, None):
        with pytest.raises(ValueError):
            tenant_setting_value("sms_daily_limit", bad)
    with pytest.raises(ValueError, match="unknown setting"):
        tenant_setting_value("sms_monthly_limit", 1)
    assert tenant_settings_from({"sms_daily_limit": 7}).sms_daily_limit == 7
    # A bad stored value is ignored: the deployment default applies.
    assert tenant_settings_from({"sms_daily_limit": "lots"}).sms_daily_limit is None
    assert tenant_settings_from(None).sms_daily_limit is None
