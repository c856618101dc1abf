"""Properties of the mailq listing over arbitrary envelopes: the parse that
scripts do (postsuper(1)'s own example) gets every entry and recipient back."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from mailsys.admin.showq import render_json, render_listing
from mailsys.message.envelope import Envelope, RcptState, Recipient
from mailsys.queue import Queue

atom = st.text("abcxyz0189+-_", min_size=1, max_size=8)
label = st.text("abcxyz019-", min_size=1, max_size=8)
local = st.lists(atom, min_size=1, max_size=3).map(".".join)          # a dot-atom
domain = st.lists(label, min_size=2, max_size=3).map(".".join)
address = st.builds(lambda l, d: f"{l}@{d}", local, domain)
reason = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=100)
recipient = st.builds(Recipient, address, state=st.sampled_from(list(RcptState)), reason=reason)
B51 = "0123456789BCDFGHJKLMNPQRSTVWXYbcdfghjklmnpqrstvwxy"
qids = st.builds(lambda a, b: f"{a}z{b}", st.text(B51, min_size=10, max_size=10),
                 st.text(B51, min_size=4, max_size=4))
envelope = st.builds(Envelope, qids, st.one_of(st.just(""), address),
                     st.lists(recipient, min_size=1, max_size=5).map(tuple),
                     arrival_time=st.integers(0, 2**31 - 1).map(float),
                     size=st.integers(0, 10**9), forced_expire=st.booleans())
entry = st.tuples(envelope, st.sampled_from([Queue.ACTIVE, Queue.INCOMING,
                                             Queue.DEFERRED, Queue.HOLD]))


@settings(max_examples=40, deadline=None)
@given(st.lists(entry, min_size=1, max_size=5, unique_by=lambda e: e[0].queue_id))
def test_script_parse_recovers_entries(entries):
    text = render_listing(entries)
    # mailq | tail -n +2 | grep -v '^ *(' | awk 'BEGIN { RS = "" } ...' | tr -d '*!'
    lines = text.splitlines()[1:]
    trailer = lines.pop()
    assert lines.pop() == ""
    assert trailer.startswith("-- ") and trailer.endswith(f" in {len(entries)} Request"
                                                          f"{'' if len(entries) == 1 else 's'}.")
    body = [line for line in lines if not line.lstrip().startswith("(")]
    blocks = "\n".join(body).split("\n\n")
    assert len(blocks) == len(entries)
    for block, (env, _) in zip(blocks, entries):
        fields = block.split()
        assert fields[0].rstrip("*!#") == env.queue_id
        assert int(fields[1]) == env.size
        assert_lists_the_undelivered(fields[7:], env)


@settings(max_examples=40, deadline=None)
@given(st.lists(entry, max_size=5))
def test_reason_lines_end_in_column_78_or_overflow(entries):
    for line in render_listing(entries).splitlines():
        if line.lstrip().startswith("(") and line.endswith(")"):
            assert len(line) == 78 or not line.startswith(" ")


@settings(max_examples=40, deadline=None)
@given(st.lists(entry, max_size=5))
def test_json_lines_parse(entries):
    lines = list(render_json(entries))
    assert len(lines) == len(entries)
    for line, (env, queue) in zip(lines, entries):
        obj = json.loads(line)
        assert obj["queue_id"] == env.queue_id and obj["queue_name"] == queue.value
        assert_lists_the_undelivered([r["address"] for r in obj["recipients"]], env)


def assert_lists_the_undelivered(listed: list[str], env: Envelope) -> None:
    # Every recipient without a final state is there, and nothing else; an
    # address that is both deferred and not tried yet (recipients may repeat)
    # is listed once for both, as Postfix's showq passes over a queue-file
    # recipient its defer log named.
    undelivered = [r.address for r in env.recipients if not r.final]
    assert set(listed) == set(undelivered)
    assert len(listed) <= len(undelivered)


def test_renderers_load_no_io_modules():
    import subprocess
    import sys
    probe = ("import sys, mailsys.admin.showq, mailsys.admin.qshape, mailsys.admin.postcat\n"
             "print(sorted(m for m in ('lmdb', 'socket', 'trio', 'ssl') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    assert out.strip() == "[]"
