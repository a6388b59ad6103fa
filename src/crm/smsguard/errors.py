"""Errors of the SMS pumping defence: each names the defence that refused the message."""

from crm.errors import InvalidRequest, RateLimited


class CountryNotAllowed(InvalidRequest):
    code = "COUNTRY_NOT_ALLOWED"
    message = "This application does not send SMS to numbers of this country."


class SmsDailyLimitReached(RateLimited):
    code = "SMS_DAILY_LIMIT_REACHED"
    message = "Today's SMS budget is used up; codes by SMS are sent again from midnight UTC."


class SmsRangeThrottled(RateLimited):
    code = "SMS_RANGE_THROTTLED"
    message = "Too many codes were sent to numbers like this one in the last hour."


class SmsCountryThrottled(RateLimited):
    code = "SMS_COUNTRY_THROTTLED"
    message = "Codes sent to this country are rarely entered; SMS to it are paused for now."
