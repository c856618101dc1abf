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
    """call(log) through the old chain, the hand-off, and the hand-off with
    configure()'s shortened bound logger; (chain events, hand-off events)
    after checking that the last two agree, return values included."""
    monkeypatch.setattr(setup, "_now", lambda: NOW)
    monkeypatch.setattr("time.time", lambda: NOW)           # TimeStamper's clock
    results, returned = [], []
    plain = structlog.make_filtering_bound_logger(logging.INFO)
    for final, wrapper in (("chain", plain), ("handoff", plain),
                           ("handoff", setup._BoundLogger)):
        writer = _Writer()
        proc = setup._HandOff(writer, TAG, PID) if final == "handoff" else \
            (lambda lg, m, d, w=writer: w.emit(_through_chain(lg, m, d)) or "")
        structlog.configure(processors=[proc], wrapper_class=wrapper,
                            logger_factory=structlog.ReturnLoggerFactory(),
                            cache_logger_on_first_use=False)
        log = structlog.get_logger()
        returned.append(log.info("r"))
        call(log)
        results.append(writer.events[1:])
    assert results[1] == results[2]
    assert returned == ["", "", ""]
    return results[:2]


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


def test_capture_logs_bypasses_the_shortened_path(make_config):
    setup.configure(make_config(), "smtpd")
    log = structlog.get_logger().bind(peer="p")
    with structlog.testing.capture_logs() as logs:
        log.info("connect", client="c[192.0.2.4]")
        log.debug("hidden")
        log.warning("w")
    assert logs == [{"peer": "p", "client": "c[192.0.2.4]", "event": "connect", "log_level": "info"},
                    {"peer": "p", "event": "w", "log_level": "warning"}]


def test_bound_context_reaches_the_handoff(monkeypatch):
    writer = _Writer()
    monkeypatch.setattr(setup, "_now", lambda: NOW)
    structlog.configure(processors=[setup._HandOff(writer, TAG, PID)],
                        wrapper_class=setup._BoundLogger,
                        logger_factory=structlog.ReturnLoggerFactory(),
                        cache_logger_on_first_use=False)
    structlog.get_logger().bind(queue_id="Q2", peer="p").info("x", n=1, peer="q")
    [event] = writer.events
    assert (event.queue_id, dict(event.fields)) == ("Q2", {"peer": "q", "n": 1})
