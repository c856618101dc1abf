"""LogEvent.decode: what postlogd gets is always clean, whether or not the
datagram needed cleaning (the careful path runs only for surrogate escapes)."""

import json

from hypothesis import given, strategies as st

from mailsys.maillog.event import LogEvent, clean_text, clean_value

# text with lone surrogates too (st.text() leaves them out)
_text = st.text(st.characters() | st.sampled_from(["\udc80", "\udcff", "\ud800"]), max_size=8)
_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12)


def _datagram(fields: dict, event: str, ascii_only: bool) -> bytes:
    wire = {"v": 1, "time": 1.5, "tag": "mailsys/smtpd", "pid": 7, "level": "info",
            "event": event, "fields": fields, "queue_id": "4F2A1C3B7D"}
    return json.dumps(wire, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


@given(st.dictionaries(_text, _values, max_size=5), _text, st.booleans())
def test_decode_equals_cleaning_every_value(fields, event, ascii_only):
    datagram = _datagram(fields, event, ascii_only)
    try:
        got = LogEvent.decode(datagram)
    except ValueError:
        # Raw surrogates (ensure_ascii=False) are not UTF-8: refused whole.
        assert not ascii_only
        return
    assert got.event == clean_text(event)
    assert got.fields == clean_value(json.loads(datagram.decode("utf-8")))["fields"]
    # whatever came in, both renderings can be written as UTF-8
    json.dumps(got.fields, ensure_ascii=False, allow_nan=False).encode("utf-8")
    got.event.encode("utf-8")


def test_surrogate_escapes_are_cleaned():
    datagram = _datagram({"client": "\udc80x", "n": float("nan")}, "bad \udcff", True)
    got = LogEvent.decode(datagram)
    assert got.event == "bad ?"
    assert got.fields == {"client": "?x", "n": "nan"}


def test_plain_datagram_keeps_its_values():
    datagram = _datagram({"client": "h[1.2.3.4]", "inf": float("-inf"), "l": [1, "ü"]}, "connect", False)
    got = LogEvent.decode(datagram)
    assert got.fields == {"client": "h[1.2.3.4]", "inf": "-inf", "l": [1, "ü"]}
    assert got.queue_id == "4F2A1C3B7D" and got.tag == "mailsys/smtpd" and got.event == "connect"


@given(st.lists(st.tuples(st.dictionaries(_text, _values, max_size=4), _text, _text | st.none()),
                min_size=1, max_size=4))
def test_encoded_events_have_no_newline_and_share_a_datagram(items):
    events = [LogEvent.from_event_dict({**fields, "event": event, "exception": exc},
                                       tag="mailsys/smtpd", pid=7, now=1.5)
              for fields, event, exc in items]
    encoded = [e.encode() for e in events]
    assert not any(b"\n" in d for d in encoded)
    # what postlogd does with a datagram of several events
    assert [LogEvent.decode(line) for line in b"\n".join(encoded).split(b"\n")] == events


@given(st.dictionaries(_text, _values, max_size=5), _text)
def test_what_a_writer_encodes_postlogd_decodes_unchanged(fields, event):
    # integers beyond 64 bits included: the encoder falls back for them
    sent = LogEvent.from_event_dict({"event": event, "data": fields, "big": 2 ** 70,
                                     "timestamp": 1.25}, tag="mailsys/smtpd", pid=7)
    datagram = sent.encode()
    assert b"\n" not in datagram
    assert LogEvent.decode(datagram) == sent
