"""Stress mode and the process-limit warning, decided as Postfix's master decides."""

import pytest

from mailsys.runtime.stress import STRESS_TIME, WARN_INTERVAL, Stress, local_only


@pytest.mark.parametrize("kind, hosts, expected", [
    ("unix", [], True),
    ("unix-dgram", [], True),
    ("pass", [], False),                           # postscreen's clients are remote
    ("inet", ["127.0.0.1"], True),
    ("inet", ["127.0.0.1", "::1"], True),
    ("inet", ["127.0.0.1", "192.0.2.1"], False),
    ("inet", ["0.0.0.0"], False),
    ("inet", ["::"], False),
    ("inet", ["fe80::1%eth0"], False),
])
def test_local_only(kind, hosts, expected):
    assert local_only(kind, hosts) is expected


def test_only_remote_services_with_a_limit_above_one_are_eligible():
    assert Stress.for_service(100, local=False).eligible
    assert not Stress.for_service(100, local=True).eligible
    assert not Stress.for_service(1, local=False).eligible
    assert not Stress.for_service(0, local=False).eligible     # no limit: never reached


def test_the_process_that_reaches_the_limit_starts_stress_mode():
    s = Stress.for_service(3, local=False)
    assert not s.restart_before_last(10.0, running=0, maxproc=3)
    assert not s.restart_before_last(10.0, running=1, maxproc=3)
    assert s.overrides(10.0) == ()
    assert s.restart_before_last(10.0, running=2, maxproc=3)   # entering: restart the running ones
    assert s.overrides(10.0) == (("stress", "yes"),)
    # Renewed while it lasts, without another restart.
    assert not s.restart_before_last(500.0, running=2, maxproc=3)
    assert s.overrides(500.0 + STRESS_TIME - 1) == (("stress", "yes"),)
    assert s.overrides(500.0 + STRESS_TIME + 1) == ()
    assert s.restart_before_last(500.0 + STRESS_TIME + 1, running=2, maxproc=3)


def test_a_local_service_never_enters_stress_mode():
    s = Stress.for_service(2, local=True)
    assert not s.restart_before_last(10.0, running=1, maxproc=2)
    assert s.overrides(10.0) == ()


def test_the_warning_at_most_once_per_interval():
    s = Stress.for_service(2, local=False)
    lines = s.warning(100.0, "smtp", "25", 2)
    assert lines == [
        'service "smtp" (25) has reached its process limit "2": new clients may experience'
        ' noticeable delays',
        "to avoid this condition, increase the process count in master.cf or reduce the"
        " service time per client",
        "see http://www.postfix.org/STRESS_README.html for examples of stress-adapting"
        " configuration settings"]
    assert s.warning(100.0 + WARN_INTERVAL, "smtp", "25", 2) == []
    assert len(s.warning(100.0 + WARN_INTERVAL + 1, "smtp", "25", 2)) == 3


def test_who_warns():
    assert Stress.for_service(2, local=True).warning(1.0, "x", "private/x", 2) == []
    assert Stress.for_service(1, local=False).warning(1.0, "x", "private/x", 1) == []   # postscreen
    # Not eligible for stress mode (never, here), so no third line.
    s = Stress(eligible=False, warns=True)
    assert len(s.warning(1.0, "x", "private/x", 5)) == 2
