"""mail.json lines: shape, and the datagram codec that carries events to postlogd."""

from __future__ import annotations

import json

import pytest

from mailsys.maillog import jsonl, postfix
from mailsys.maillog.event import LogEvent

EVENT = LogEvent(time=1795739300.123456, tag="mailsys/submission/smtpd", pid=4242, level="warning",
                 event="client", queue_id="4F2A1C3B7D",
                 fields={"client": "c.example[192.0.2.1]", "sasl_method": "PLAIN",
                         "sasl_username": "bob", "port": 2587})


def test_json_line_shape():
    line = jsonl.render(EVENT, "mx.example.com")
    assert "\n" not in line
    record = json.loads(line)
    assert list(record) == ["ts", "host", "tag", "service", "pid", "level", "queue_id",
                            "event", "fields", "text"]
    assert record["ts"] == "2026-11-27T00:28:20.123456Z"
    assert record["host"] == "mx.example.com"
    assert record["tag"] == "mailsys/submission/smtpd"
    assert record["service"] == "smtpd"
    assert record["pid"] == 4242
    assert record["level"] == "warning"
    assert record["queue_id"] == "4F2A1C3B7D"
    assert record["event"] == "client"
    assert record["fields"] == dict(EVENT.fields)
    assert record["text"] == ("warning: 4F2A1C3B7D: client=c.example[192.0.2.1], "
                              "sasl_method=PLAIN, sasl_username=bob")
    assert record["text"] == postfix.message(EVENT)


def test_json_line_optional_keys():
    e = LogEvent(time=0.0, tag="mailsys/smtpd", pid=1, level="error", event="boom",
                 noqueue=True, exception="Traceback (most recent call last):\nValueError: x")
    record = json.loads(jsonl.render(e, "mx"))
    assert record["queue_id"] is None
    assert record["noqueue"] is True
    assert record["exception"] == "Traceback (most recent call last):\nValueError: x"
    assert record["text"] == "error: NOQUEUE: boom"
    plain = json.loads(jsonl.render(LogEvent(0.0, "t/x", 1, "info", "hi"), "mx"))
    assert "noqueue" not in plain and "exception" not in plain


def test_datagram_round_trip():
    assert LogEvent.decode(EVENT.encode()) == EVENT


def test_event_dict_is_split_into_identity_fields_and_text():
    e = LogEvent.from_event_dict(
        {"event": "opened", "level": "info", "timestamp": 12.5, "queue_id": "Q1",
         "sender": "a@b", "size": 3, "nrcpt": 1, "delays": (1, 2), "pid": 99, "obj": object,
         "exception": "Traceback\nX", "stack": "Stack (most recent call last):"},
        tag="mailsys/qmgr", pid=7)
    assert (e.time, e.tag, e.pid, e.level, e.event, e.queue_id) == (12.5, "mailsys/qmgr", 7, "info", "opened", "Q1")
    # a caller's own "pid" is a field, never the process identity
    assert e.fields == {"sender": "a@b", "size": 3, "nrcpt": 1, "delays": [1, 2], "pid": 99,
                        "obj": "<class 'object'>"}
    assert e.exception == "Traceback\nX\nStack (most recent call last):"


@pytest.mark.parametrize("method, level", [
    ("debug", "debug"), ("info", "info"), ("warning", "warning"), ("warn", "warning"),
    ("error", "error"), ("exception", "error"), ("critical", "fatal"), ("fatal", "fatal"),
])
def test_structlog_levels_map_to_postfix_severities(method, level):
    e = LogEvent.from_event_dict({"event": "x", "level": method}, tag="t/x", pid=1, now=0.0)
    assert e.level == level


@pytest.mark.parametrize("datagram", [
    b"", b"\xff\xfe", b"[]", b"null", b'{"v":1}',
    b'{"v":1,"time":"now","tag":"t","pid":1,"level":"info","event":"x"}',
    b'{"v":1,"time":1,"tag":"t","pid":true,"level":"info","event":"x"}',
    b'{"v":1,"time":1,"tag":"t","pid":1,"level":"info","event":"x","fields":[]}',
])
def test_malformed_datagrams_raise_value_error(datagram):
    with pytest.raises(ValueError):
        LogEvent.decode(datagram)


def test_unknown_wire_keys_are_ignored():
    e = LogEvent.decode(b'{"v":2,"time":1,"tag":"t/x","pid":1,"level":"info","event":"x","new":5}')
    assert e == LogEvent(1.0, "t/x", 1, "info", "x")
