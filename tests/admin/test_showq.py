"""mailq / postqueue -p / postqueue -j: Postfix's formats, byte for byte."""

from __future__ import annotations

import json
import time

import pytest

from mailsys.admin.showq import render_json, render_listing
from mailsys.message.envelope import Envelope
from mailsys.queue import Queue

from admin_fixtures import (LONG, REFUSED, SAMPLES, TIMEOUT, D, entries, rcpt, run_process,
                      run_tool)


# The formats from Postfix's showq_compat.c for long queue IDs
# (postfix-compat.md 3.1), written out here independently of the code.
def message(qid: str, size: int, when: float, sender: str) -> str:
    return "%-17s %8ld %19.19s %s\n" % (qid, size, time.asctime(time.localtime(when)), sender)


def reason(text: str) -> str:
    return "%*s(%s)\n" % (max(0, 76 - len(text)), "", text)


def recipient(address: str) -> str:
    return "%-17s %8s %-19s %s\n" % ("", "", "", address)


HEADING = "%-17s %8s %-19s %s\n" % ("----Queue ID-----", "--Size--",
                                    "---Arrival Time----", "--Sender/Recipient------")


def test_listing_matches_postfix_long_id_sample(utc):
    # The two messages of mailq-p-long-ids-excerpt.txt, rebuilt as envelopes.
    envs = [
        (Envelope(queue_id="4jbDmW4NhRzJDXR", sender="alice@example.com",
                  arrival_time=1795739323, size=264,
                  recipients=(rcpt("zoe@remote.example", D, REFUSED),)), Queue.DEFERRED),
        (Envelope(queue_id="B69A620E28B", sender="", arrival_time=1795738943, size=4559,
                  recipients=(rcpt("gina@remote.example", D, REFUSED),)), Queue.DEFERRED),
    ]
    golden = (SAMPLES / "mailq-p-long-ids-excerpt.txt").read_text()
    assert render_listing(envs) == golden


def test_json_matches_postfix_sample(utc):
    envs = [
        (Envelope(queue_id="B57F120E28A", sender="alice@example.com",
                  arrival_time=1795738943, size=4533,
                  recipients=(rcpt("frank@other.example", D, REFUSED),
                              rcpt("erin@remote.example", D, REFUSED))), Queue.ACTIVE),
        (Envelope(queue_id="972C220E072", sender="alice@example.com",
                  arrival_time=1795738922, size=337,
                  recipients=(rcpt("carol@remote.example", D, REFUSED),)), Queue.DEFERRED),
        (Envelope(queue_id="B69A620E28B", sender="", arrival_time=1795738943, size=4559,
                  recipients=(rcpt("gina@remote.example", D, REFUSED),)), Queue.DEFERRED),
        (Envelope(queue_id="B963120E28C", sender="bob@example.com",
                  arrival_time=1795738943, size=4559,
                  recipients=(rcpt("hank@remote.example", D, REFUSED),)), Queue.HOLD),
    ]
    golden = (SAMPLES / "postqueue-j.jsonl").read_text()
    assert "".join(render_json(envs)) == golden


def test_reason_line_ends_in_column_78():
    line = reason(REFUSED)
    assert line.rstrip("\n").endswith(")") and len(line.rstrip("\n")) == 78
    out = render_listing([(Envelope(queue_id="4jbDmW4NhRzJDXR", sender="a@b",
                                    recipients=(rcpt("c@d", D, REFUSED),)), Queue.DEFERRED)])
    assert line in out.splitlines(keepends=True)


def test_empty_queue():
    assert render_listing([]) == "Mail queue is empty\n"
    assert list(render_json([])) == []


def test_one_request_is_singular():
    out = render_listing([(Envelope(queue_id="4jbDmW4NhRzJDXR", sender="a@b", size=2048,
                                    recipients=(rcpt("c@d"),)), Queue.INCOMING)])
    assert out.endswith("\n-- 2 Kbytes in 1 Request.\n")


def test_non_ascii_addresses_follow_smtputf8_enable():
    # Postfix 3.7.11, sendmail -f 's\u00e9@example.org' 'r\u00fc@defer.example', then mailq
    # and postqueue -j with smtputf8_enable = yes, and = no:
    #   ... s\u00e9@example.org / r\u00fc@defer.example   and   ... s??@example.org / r??@defer.example
    entry = [(Envelope(queue_id="B2EEE20C7CE", sender="s\u00e9@example.org", size=266,
                       recipients=(rcpt("r\u00fc@defer.example", D, "try again later"),)),
              Queue.DEFERRED)]
    shown = {utf8: (render_listing(entry, utf8), json.loads("".join(render_json(entry, utf8))))
             for utf8 in (True, False)}
    for utf8, sender, address in ((True, "s\u00e9@example.org", "r\u00fc@defer.example"),
                                  (False, "s??@example.org", "r??@defer.example")):
        listing, obj = shown[utf8]
        assert listing.splitlines()[1].endswith(" " + sender)
        assert listing.splitlines()[3] == recipient(address).rstrip("\n")
        assert (obj["sender"], obj["recipients"][0]["address"]) == (sender, address)


# Postfix 3.7.11, recipient_canonical_maps old@ -> new@, resolve_numeric_domain
# = yes, relayhost a closed port; RCPT TO old@remote.example, u@1.2.3.4,
# plain@remote.example. Logged: "to=<u@[1.2.3.4]>, orig_to=<u@1.2.3.4>, ...
# status=deferred", "to=<new@remote.example>, orig_to=<old@remote.example>, ...".
# postqueue -p (short IDs):
#   A6D9F20E18E     437 Sat Nov 28 11:16:02  alice@example.com
#                       (connect to 127.0.0.1[127.0.0.1]:3502: Connection refused)
#                                            u@[1.2.3.4]
#                                            new@remote.example
#                                            plain@remote.example
#                                                             (reason unavailable)
#                                            u@1.2.3.4
REFUSED_3502 = "connect to 127.0.0.1[127.0.0.1]:3502: Connection refused"
# Its recipients in the order its defer log had them (Postfix's delivery
# order), so that the listing is Postfix's line for line.
REWRITTEN = [(Envelope(
    queue_id="A6D9F20E18E", sender="alice@example.com", arrival_time=1795864562, size=437,
    recipients=(rcpt("u@1.2.3.4", D, REFUSED_3502, deferred_as="u@[1.2.3.4]"),
                rcpt("new@remote.example", D, REFUSED_3502, orig="old@remote.example"),
                rcpt("plain@remote.example", D, REFUSED_3502))), Queue.DEFERRED)]


def test_rewritten_recipients_listed_as_postfix_does(utc):
    # The deferrals come first under the addresses deferred; the queued
    # u@1.2.3.4, which no deferral named, follows as untried.
    assert render_listing(REWRITTEN) == (
        HEADING + message("A6D9F20E18E", 437, 1795864562, "alice@example.com")
        + reason(REFUSED_3502) + recipient("u@[1.2.3.4]")
        + recipient("new@remote.example") + recipient("plain@remote.example")
        + reason("reason unavailable") + recipient("u@1.2.3.4")
        + "\n-- 0 Kbytes in 1 Request.\n")


def test_rewritten_recipients_json_as_postfix_does():
    # Postfix's postqueue -j for that queue file, verbatim.
    assert "".join(render_json(REWRITTEN)) == (
        '{"queue_name": "deferred", "queue_id": "A6D9F20E18E", "arrival_time": 1795864562,'
        ' "message_size": 437, "forced_expire": false, "sender": "alice@example.com",'
        ' "recipients": [{"address": "u@[1.2.3.4]", "delay_reason": "connect to'
        ' 127.0.0.1[127.0.0.1]:3502: Connection refused"}, {"address": "new@remote.example",'
        ' "delay_reason": "connect to 127.0.0.1[127.0.0.1]:3502: Connection refused"},'
        ' {"address": "plain@remote.example", "delay_reason": "connect to'
        ' 127.0.0.1[127.0.0.1]:3502: Connection refused"}, {"address": "u@1.2.3.4"}]}\n')


def expected_listing(ids: dict[str, str]) -> str:
    t0 = 1795738922
    return (HEADING
            + message(ids["active"] + "*", 4533, t0 + 21, "alice@example.com")
            + reason(REFUSED) + recipient("frank@other.example")
            + recipient("erin@remote.example")
            + reason("reason unavailable") + recipient("new@other.example")
            + "\n"
            + message(ids["incoming"], 1000, t0 + 30, "carol@example.com")
            + recipient('"john doe"@example.net') + recipient('"x?y"@example.net')
            + "\n"
            + message(ids["bounce"], 337, t0, "MAILER-DAEMON")
            + reason(REFUSED) + recipient("a@remote.example")
            + reason(TIMEOUT) + recipient("b@remote.example") + recipient("c@remote.example")
            + reason("reason unavailable") + recipient("d@remote.example")
            + reason(TIMEOUT) + recipient("e@remote.example")
            + "\n"
            + message(ids["long"], 2048, t0 + 5, "dave@example.com")
            + "(" + LONG + ")\n" + recipient("zoe@far.example")
            + "\n"
            + message(ids["held"] + "!#", 4559, t0 + 21, "bob@example.com")
            + reason(REFUSED) + recipient("hank@remote.example")
            + "\n-- 12 Kbytes in 5 Requests.\n")


@pytest.mark.parametrize("args", [("mailq",), ("postqueue", "-p"), ("sendmail", "-bp")])
def test_mailq_lists_every_queue_state(capsys, setup, queue, args):
    status, out, err = run_tool(capsys, setup, *args)
    assert (status, err) == (0, "")
    assert out == expected_listing(queue)


def test_mailq_shape_matches_sample_columns(capsys, setup, queue):
    # Same column positions as Postfix's long-ID lines: the size ends in
    # column 26, the time starts in column 28, recipients in column 48.
    _, out, _ = run_tool(capsys, setup, "mailq")
    sample = (SAMPLES / "mailq-p-long-ids-excerpt.txt").read_text().splitlines()
    lines = out.splitlines()
    assert lines[0] == sample[0]
    msg, sample_msg = lines[1], sample[1]
    assert msg[26] == sample_msg[26] == " " and msg[25].isdigit() and sample_msg[25].isdigit()
    assert msg[27:30] == sample_msg[27:30] == "Fri"
    rcpt_line = next(l for l in lines if l.strip() == "frank@other.example")
    assert rcpt_line.index("f") == sample[3].index("z") == 47


def test_postqueue_json_lists_every_entry(capsys, setup, queue):
    status, out, err = run_tool(capsys, setup, "postqueue", "-j")
    assert (status, err) == (0, "")
    objs = [json.loads(line) for line in out.splitlines()]
    assert [o["queue_id"] for o in objs] == [queue[n] for n in
                                             ("active", "incoming", "bounce", "long", "held")]
    for line, obj in zip(out.splitlines(), objs):
        assert list(obj) == ["queue_name", "queue_id", "arrival_time", "message_size",
                             "forced_expire", "sender", "recipients"]
        assert json.dumps(obj, ensure_ascii=False) == line
    assert [o["queue_name"] for o in objs] == ["active", "incoming", "deferred",
                                               "deferred", "hold"]
    held = objs[-1]
    assert held["forced_expire"] is True and held["arrival_time"] == 1795738943
    bounce = objs[2]
    assert bounce["sender"] == "MAILER-DAEMON"
    assert bounce["recipients"][0] == {"address": "a@remote.example", "delay_reason": REFUSED}
    assert bounce["recipients"][3] == {"address": "d@remote.example"}
    assert [r["address"] for r in objs[0]["recipients"]] == [
        "frank@other.example", "erin@remote.example", "new@other.example"]


def test_mailq_empty_and_never_started(capsys, setup):
    status, out, _ = run_tool(capsys, setup, "mailq")
    assert (status, out) == (0, "Mail queue is empty\n")
    assert not (setup.queue_dir / "lmdb").exists()       # a listing creates nothing
    status, out, _ = run_tool(capsys, setup, "postqueue", "-j")
    assert (status, out) == (0, "")


def test_listing_sees_changes_by_others(capsys, setup, queue):
    from mailsys.queue import QueueStore
    with QueueStore.open(setup.queue_dir) as store:
        store.remove(queue["long"])
    _, out, _ = run_tool(capsys, setup, "mailq")
    assert queue["long"] not in out and out.endswith("-- 10 Kbytes in 4 Requests.\n")
    assert len(entries(setup.queue_dir)) == 4


@pytest.mark.integration
def test_mailq_as_a_process(setup, queue):
    r = run_process(setup, "mailq")
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout == expected_listing(queue)
