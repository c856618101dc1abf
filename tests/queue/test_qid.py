"""Queue IDs: Postfix long-ID shape, fixed width, strictly increasing."""

import os
import re
import time

import pytest

from mailsys.message import qid as qidmod
from mailsys.message.qid import QID_LENGTH, is_qid, new_qid, qid_pid, qid_time


def test_shape_matches_postfix_long_ids_and_log_parsers():
    q = new_qid()
    assert len(q) == QID_LENGTH == 15
    assert re.fullmatch(r"[A-Za-z0-9]+", q)
    assert re.fullmatch(r"\w+", q)                 # fail2ban "\w+:"
    assert re.fullmatch(r"[^:\s]+", q)             # pflogsumm
    assert q[10] == "z" and "z" not in q[11:]
    assert not set(q) & set("AEIOUaeiou")
    assert is_qid(q)
    # Postfix's own long ID from postfix-compat.md 3.1 has the same shape.
    assert is_qid("4jbDmW4NhRzJDXR")


def test_time_and_pid_decode():
    before = time.time()
    q = new_qid()
    assert before - 1 <= qid_time(q) <= time.time() + 1
    assert qid_pid(q) == os.getpid()


@pytest.mark.parametrize("bad", ["", "4jbDmW4NhRzJDX", "4jbDmW4NhRzJDXR1",
                                 "4jbDmW4NhRaJDXR", "4jbDmW4NhRzJDXz",
                                 "4jbDmW4NhR:JDXR", "1C0BF20E25F"])
def test_is_qid_rejects_other_shapes(bad):
    assert not is_qid(bad)
    with pytest.raises(ValueError):
        qid_time(bad)


def test_tight_loop_is_unique_and_sorted():
    qids = [new_qid() for _ in range(20000)]
    assert len(set(qids)) == len(qids)
    assert qids == sorted(qids)
    assert all(len(q) == QID_LENGTH for q in qids)


def test_stopped_or_backward_clock_still_increases(monkeypatch):
    now = [time.time_ns()]
    monkeypatch.setattr(qidmod.time, "time_ns", lambda: now[0])
    a = [new_qid() for _ in range(5)]
    now[0] -= 10**9                                   # clock stepped back 1 s
    b = [new_qid() for _ in range(5)]
    seq = a + b
    assert seq == sorted(seq) and len(set(seq)) == 10


def test_string_order_is_time_order():
    times = [0, 1, 51, 52, 999_999, 1_000_000, 52**5, 1795738922_000_001]
    encoded = [qidmod._encode(t // 1_000_000, 6, qidmod.ALPHABET)
               + qidmod._encode(t % 1_000_000, 4, qidmod.ALPHABET) for t in times]
    assert encoded == sorted(encoded)


def test_encode_refuses_overflow():
    with pytest.raises(ValueError):
        qidmod._encode(52**6, 6, qidmod.ALPHABET)
