"""The one-processor hand-off makes the same LogEvent as structlog's chain.

setup._HandOff does the work of merge_contextvars, add_log_level,
TimeStamper(fmt=None) and format_exc_info itself; these tests run both on
the same calls and compare the events field by field.
"""

from __future__ import annotations

import logging

import pytest
import structlog

from mailsys.maillog import setup
from mailsys.maillog.event import LogEvent

NOW = 1_795_000_000.25
TAG, PID = "mailsys/smtpd", 4242

_CHAIN = [structlog.contextvars.merge_contextvars,
          structlog.processors.add_log_level,
          structlog.processors.TimeStamper(fmt=None, utc=True),
          structlog.processors.format_exc_info]


class _Writer:
    def __init__(self) -> None:
        self.events: list[LogEvent] = []

    def emit(self, event: LogEvent) -> None:
        self.events.append(event)


def _through_chain(logger, method, event_dict):
    for proc in _CHAIN:
        event_dict = proc(logger, method, event_dict)
    return LogEvent.from_event_dict(event_dict, tag=TAG, pid=PID)


def _log_both(monkeypatch, call):
    """call(log) once through each processor list; (chain events, hand-off events)."""
    monkeypatch.setattr(setup, "_now", lambda: NOW)
    monkeypatch.setattr("time.time", lambda: NOW)           # TimeStamper's clock
    results = []
    for final in ("chain", "handoff"):
        writer = _Writer()
        proc = setup._HandOff(writer, TAG, PID) if final == "handoff" else \
            (lambda lg, m, d, w=writer: w.emit(_through_chain(lg, m, d)) or "")
        structlog.configure(processors=[proc],
                            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
                            logger_factory=structlog.ReturnLoggerFactory(),
                            cache_logger_on_first_use=False)
        call(structlog.get_logger())
        results.append(writer.events)
    return results


def _calls(log) -> None:
    log.info("connect", client="mail.example.org[192.0.2.1]")
    log.info("status", queue_id="4F2A1C3B7D", to="b@example.net", relay="none",
             delay=0.27, delays=(0.05, 0.01, 0.08, 0.13), dsn="2.0.0", status="sent",
             reason="250 2.0.0 Ok")
    log.info("client", noqueue=True, client="x[192.0.2.2]")
    log.warning("process /x pid 12 exit status 1")
    log.warn("old-style warn")
    log.error("bad", level="debug", timestamp=5.0)     # the method wins, the clock wins
    log.critical("fatal thing")
    log.info("t\u00e9xt \udcff", data=b"\xff\xfe", n=float("nan"), flag=True, none=None)
    log.debug("not logged")
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        log.exception("handler failed", queue_id="Q1")
        log.info("with exc_info", exc_info=True)
    log.info("no exception", exc_info=False)


def test_handoff_matches_structlog_chain(monkeypatch):
    chain, handoff = _log_both(monkeypatch, _calls)
    assert len(chain) == len(handoff) == 11
    assert handoff == chain
    assert [e.level for e in handoff][3:7] == ["warning", "warning", "error", "fatal"]
    assert handoff[8].exception.endswith("ValueError: bad\nvalue")
    assert "Traceback" in handoff[9].exception and handoff[10].exception is None


def test_handoff_merges_bound_contextvars(monkeypatch):
    def call(log):
        structlog.contextvars.bind_contextvars(queue_id="1C0BF20E25F", peer="p")
        try:
            log.info("client", client="c[192.0.2.3]")
        finally:
            structlog.contextvars.clear_contextvars()
        log.info("after")
    chain, handoff = _log_both(monkeypatch, call)
    assert handoff == chain
    assert handoff[0].queue_id == "1C0BF20E25F" and handoff[0].fields["peer"] == "p"
    assert handoff[1].queue_id is None


@pytest.fixture(autouse=True)
def _reset():
    yield
    structlog.reset_defaults()
