"""Envelope records: round trips, compatibility rules, corrupt input."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsys.message.envelope import Envelope, Notify, RcptState, Recipient
from mailsys.queue import CorruptRecord, Queue
from mailsys.queue import records

# Any str, lone surrogates included (smtpd may carry undecodable bytes so).
text = st.text(st.characters(exclude_categories=()), max_size=40)
times = st.floats(allow_nan=False)

recipients = st.builds(
    Recipient, address=text, orig=text, orcpt=text,
    notify=st.lists(st.sampled_from(Notify), max_size=3).map(tuple),
    state=st.sampled_from(RcptState), dsn_status=text, reason=text,
    remote_mta=text, diagnostic=text, last_attempt=times, notified=st.booleans(),
    action=st.sampled_from(["", "delivered", "relayed"]))

envelopes = st.builds(
    Envelope, queue_id=st.just("4jbDmW4NhRzJDXR"), sender=text,
    recipients=st.lists(recipients, max_size=4).map(tuple),
    arrival_time=times, size=st.integers(min_value=0, max_value=2**63),
    client_name=text, client_addr=text, client_port=st.integers(0, 65535),
    helo=text, protocol=text, sasl_user=text, sasl_method=text, sasl_sender=text,
    rewrite_context=st.sampled_from(["remote", "local"]), envid=text,
    ret=st.sampled_from(["", "FULL", "HDRS"]),
    body_type=st.sampled_from(["", "7BIT", "8BITMIME"]), smtputf8=st.booleans(),
    attempts=st.integers(0, 10**6), next_attempt=times, last_reason=text,
    forced_expire=st.booleans(), delay_warned=st.booleans(),
    attrs=st.lists(st.tuples(text, text), max_size=3).map(tuple))


@settings(max_examples=300, deadline=None)
@given(envelopes, st.sampled_from(Queue))
def test_round_trip(env, queue):
    value = records.encode(env, queue)
    assert records.decode(env.queue_id, value) == (env, queue)
    assert records.decode_queue(value) is queue


def test_defaults_are_left_out_and_queue_id_is_the_key():
    env = Envelope("4jbDmW4NhRzJDXR", "a@example.com", (Recipient("b@example.org"),))
    value = records.encode(env, Queue.ACTIVE)
    assert value == b'\x01\x02{"sender":"a@example.com","recipients":[{"address":"b@example.org"}]}'


def test_golden_full_record():
    # Pins the field names on disk: renaming a field fails here first.
    env = Envelope("4jbDmW4NhRzJDXR", "", (
        Recipient("b@example.org", orig="B@example.org", orcpt="rfc822;B@example.org",
                  notify=(Notify.FAILURE, Notify.DELAY), state=RcptState.DEFERRED,
                  dsn_status="4.4.1", reason="connect refused", remote_mta="mx.example.org",
                  diagnostic="smtp; 451 try later", last_attempt=2.5, notified=True,
                  action="relayed"),),
        arrival_time=1.5, size=337, client_name="c.example", client_addr="192.0.2.1",
        client_port=25, helo="c.example", protocol="ESMTP", sasl_user="u",
        sasl_method="PLAIN", sasl_sender="<s@example.com>", rewrite_context="local", envid="E1", ret="HDRS",
        body_type="8BITMIME", smtputf8=True, attempts=3, next_attempt=9.0,
        last_reason="later", forced_expire=True, delay_warned=True, attrs=(("k", "v"),))
    doc = json.loads(records.encode(env, Queue.DEFERRED)[2:])
    assert doc == {
        "sender": "", "arrival_time": 1.5, "size": 337, "client_name": "c.example",
        "client_addr": "192.0.2.1", "client_port": 25, "helo": "c.example",
        "protocol": "ESMTP", "sasl_user": "u", "sasl_method": "PLAIN",
        "sasl_sender": "<s@example.com>", "rewrite_context": "local", "envid": "E1", "ret": "HDRS",
        "body_type": "8BITMIME", "smtputf8": True, "attempts": 3,
        "next_attempt": 9.0, "last_reason": "later", "forced_expire": True,
        "delay_warned": True, "attrs": [["k", "v"]],
        "recipients": [{
            "address": "b@example.org", "orig": "B@example.org",
            "orcpt": "rfc822;B@example.org", "notify": ["FAILURE", "DELAY"],
            "state": "deferred", "dsn_status": "4.4.1", "reason": "connect refused",
            "remote_mta": "mx.example.org", "diagnostic": "smtp; 451 try later",
            "last_attempt": 2.5, "notified": True, "action": "relayed"}]}


def test_unknown_fields_are_ignored_and_missing_ones_default():
    value = b'\x01\x03{"sender":"s","future":1,"recipients":[{"address":"r","later":[1]}]}'
    env, queue = records.decode("4jbDmW4NhRzJDXR", value)
    assert queue is Queue.DEFERRED
    assert env == Envelope("4jbDmW4NhRzJDXR", "s", (Recipient("r"),))
    assert env.sasl_sender == ""                  # a record from before sasl_sender


@pytest.mark.parametrize("value", [
    b"", b"\x01", b"\x02\x01{}", b"\x01\x09{}", b"\x01\x01not json",
    b'\x01\x01{"sender":"s"}', b'\x01\x01{"recipients":[]}',
    b'\x01\x01{"sender":"s","recipients":[{"state":"lost","address":"r"}]}',
    b'\x01\x01{"sender":"s","recipients":[{}]}', b'\x01\x01[1]',
])
def test_corrupt_records_raise_corrupt_record(value):
    with pytest.raises(CorruptRecord):
        records.decode("4jbDmW4NhRzJDXR", value)


def test_envelope_helpers():
    env = Envelope("4jbDmW4NhRzJDXR", "s", [Recipient("a"), Recipient("b")],
                   attrs=[("x", "1")])
    assert isinstance(env.recipients, tuple) and env.attrs == (("x", "1"),)
    assert env.pending == (0, 1) and not env.done
    env = env.with_recipient(0, state=RcptState.SENT)
    env = env.with_recipient(1, state="bounced")
    assert env.recipients[1].state is RcptState.BOUNCED
    assert env.pending == () and env.done
    assert env.attr("x") == "1" and env.attr("y") is None
    with pytest.raises(ValueError):
        Recipient("a", state="gone")


@pytest.mark.parametrize("queue", list(Queue))
def test_requeue_is_encode_in_the_other_queue(queue):
    env = Envelope("4jbDmW4NhRzJDXR", "s", (Recipient("a", state=RcptState.DEFERRED),),
                   next_attempt=12.5, attrs=(("x", "\udcff"),))
    value = records.encode(env, Queue.INCOMING)
    moved = records.requeue(value, queue)
    assert moved == records.encode(env, queue)
    assert records.decode_queue(moved) is queue
    assert records.decode("4jbDmW4NhRzJDXR", moved) == (env, queue)


@pytest.mark.parametrize("value", [b"", b"\x01", b"\x02\x01{}", b"\x01\x09{}"])
def test_requeue_refuses_an_unreadable_header(value):
    with pytest.raises(CorruptRecord):
        records.requeue(value, Queue.ACTIVE)
