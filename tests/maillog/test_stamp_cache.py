"""The per-second caches of the two timestamps give the uncached result."""

import datetime
import time

from mailsys.maillog import jsonl, postfix


def _iso(when: float) -> str:
    return datetime.datetime.fromtimestamp(when, tz=datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def test_iso_timestamp_same_second_and_rounding_carry():
    # 1.9999996 rounds up to 2.000000; the cached "...:01." must not be used.
    for when in (1.25, 1.5, 1.9999996, 1.9999994, 2.0, 1700000000.9999999, -1.5):
        assert jsonl.timestamp(when) == _iso(when), when


def test_syslog_stamp_follows_a_zone_change(monkeypatch):
    when = 1700000000.25
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert postfix.stamp(when) == "Nov 14 22:13:20 "
        monkeypatch.setenv("TZ", "Asia/Tokyo")
        time.tzset()
        assert postfix.stamp(when + 0.5) == "Nov 15 07:13:20 "
    finally:
        monkeypatch.undo()
        time.tzset()
