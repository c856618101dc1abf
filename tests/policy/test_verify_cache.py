"""The verify service's cache decisions (Postfix verify.c), without I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsys.ipc.proto.verify import BOUNCE, DEFER, OK, TODO
from mailsys.policy.verify_cache import (IN_PROGRESS, PROBE_TTL, VerifyEntry, VerifyTimes,
                                         expired, on_query, on_update, probe_sender)

T = VerifyTimes()            # Postfix 3.7 defaults: 31d/7d positive, 3d/3h negative
NOW = 1_800_000_000.0
DAY = 86400.0


def test_an_unknown_address_is_in_progress_and_probed_once():
    first = on_query(None, NOW, T)
    assert (first.status, first.text, first.probe) == (TODO, IN_PROGRESS, True)
    assert first.store == VerifyEntry(TODO, NOW, 0.0, IN_PROGRESS)
    # Asked again while the probe is out: the same answer, no second probe.
    again = on_query(first.store, NOW + 10, T)
    assert (again.status, again.probe, again.store) == (TODO, False, None)
    # A probe with no result for PROBE_TTL seconds counts as lost.
    lost = on_query(first.store, NOW + PROBE_TTL + 1, T)
    assert lost.probe and lost.store.probed == NOW + PROBE_TTL + 1


def test_a_result_answers_until_its_refresh_time_then_probes_and_still_answers():
    entry = on_update(None, OK, "250 2.1.5 Ok", NOW)
    assert entry == VerifyEntry(OK, 0.0, NOW, "250 2.1.5 Ok")
    fresh = on_query(entry, NOW + 6 * DAY, T)
    assert (fresh.status, fresh.text, fresh.probe) == (OK, "250 2.1.5 Ok", False)
    stale = on_query(entry, NOW + 8 * DAY, T)           # past the 7d refresh time
    assert (stale.status, stale.probe) == (OK, True)
    assert stale.store == VerifyEntry(OK, NOW + 8 * DAY, NOW, "250 2.1.5 Ok")
    gone = on_query(entry, NOW + 32 * DAY, T)           # past the 31d expiry
    assert (gone.status, gone.text, gone.probe) == (TODO, IN_PROGRESS, True)


@pytest.mark.parametrize("status", [DEFER, BOUNCE])
def test_negative_results_refresh_after_3h_and_expire_after_3d(status):
    entry = on_update(None, status, "host x said: 550 no", NOW)
    assert on_query(entry, NOW + 2 * 3600, T).probe is False
    refresh = on_query(entry, NOW + 4 * 3600, T)
    assert (refresh.status, refresh.text, refresh.probe) == (status, "host x said: 550 no", True)
    assert on_query(entry, NOW + 4 * DAY, T).status == TODO


def test_a_failed_probe_does_not_replace_a_deliverable_address():
    ok = VerifyEntry(OK, 0.0, NOW, "250 Ok")
    assert on_update(ok, BOUNCE, "host x said: 550 no", NOW + 10) is None
    assert on_update(ok, OK, "250 again", NOW + 10) == VerifyEntry(OK, 0.0, NOW + 10, "250 again")
    bad = VerifyEntry(BOUNCE, 0.0, NOW, "no")
    assert on_update(bad, OK, "250 Ok", NOW + 10).status == OK


def test_without_negative_cache_nothing_is_stored_for_an_unknown_address():
    t = VerifyTimes(negative_cache=False)
    out = on_query(None, NOW, t)
    assert (out.status, out.probe, out.store, out.delete) == (TODO, True, None, False)
    # A negative entry that expired is removed, not kept as "in progress".
    old = VerifyEntry(BOUNCE, 0.0, NOW - 4 * DAY, "no")
    gone = on_query(old, NOW, t)
    assert (gone.status, gone.probe, gone.store, gone.delete) == (TODO, True, None, True)
    # A known address keeps its entry while it is probed again.
    known = VerifyEntry(BOUNCE, 0.0, NOW - 4 * 3600, "no")
    kept = on_query(known, NOW, t)
    assert kept.store == VerifyEntry(BOUNCE, NOW, NOW - 4 * 3600, "no") and not kept.delete


def test_cleanup_drops_expired_and_unreadable_entries_only():
    assert expired(None, NOW, T)
    assert expired(VerifyEntry(OK, 0.0, NOW - 32 * DAY, ""), NOW, T)
    assert not expired(VerifyEntry(OK, 0.0, NOW - 30 * DAY, ""), NOW, T)
    assert expired(VerifyEntry(BOUNCE, 0.0, NOW - 4 * DAY, ""), NOW, T)
    # A probe is out: kept until it is overdue.
    assert not expired(VerifyEntry(BOUNCE, NOW - 5, NOW - 4 * DAY, ""), NOW, T)


@pytest.mark.parametrize("raw", ["", "x", "0:1:2", "9:1:2:text", "0:0:0:text", "a:1:2:t"])
def test_malformed_entries_read_as_absent(raw):
    assert VerifyEntry.decode(raw) is None
    assert on_query(VerifyEntry.decode(raw), NOW, T).status == TODO


@given(st.sampled_from([OK, DEFER, BOUNCE, TODO]), st.integers(0, 2**40),
       st.integers(1, 2**40), st.text())
def test_entries_round_trip_as_postfix_writes_them(status, probed, updated, text):
    entry = VerifyEntry(status, float(probed), float(updated), text)
    assert entry.encode().startswith(f"{status}:{probed}:{updated}:")
    assert VerifyEntry.decode(entry.encode()) == entry


def test_probe_sender():
    assert probe_sender("double-bounce", 0, NOW, "mx.example") == "double-bounce@mx.example"
    assert probe_sender("<>", 0, NOW, "mx.example") == ""
    assert probe_sender("", 0, NOW, "mx.example") == ""
    assert probe_sender("probe@example.org", 0, NOW, "mx.example") == "probe@example.org"
    # address_verify_sender_ttl: the time slot in base 31 (no vowels) after
    # the local part, changing every ttl seconds.
    a = probe_sender("probe@example.org", 3600, NOW, "mx.example")
    b = probe_sender("probe@example.org", 3600, NOW + 3600, "mx.example")
    assert a != b and a.startswith("probe") and a.endswith("@example.org")
    assert probe_sender("probe", 31, 31 * 31 * 2, "h") == "probe20@h"        # slot 62
    assert probe_sender("probe", 1, 30 * 31 + 10, "h") == "probeZB@h"       # digits 30, 10
