"""Golden transcripts (Postfix .in/.ref style): C: lines in, S: lines out, byte for byte.

Each file in transcripts/ is run twice: pipelined (every client line in one
write) and in lock step (each block of client lines, then its replies).
``C: text`` sends text + CRLF; ``C* text`` sends the escape-decoded text as
is; ``S: text`` is one expected reply line; ``# settings: k=v ...`` sets
Settings fields; ``# stats: ...`` is the expected disconnect statistics.
"""

from __future__ import annotations

import codecs
import dataclasses
from pathlib import Path

import pytest
from _smtp_testlib import BANNER, QID, Result, drain, sasl_policy, settings

from mailsys.smtp import EndOfData, ServerConnection, Settings, State, replies

FILES = sorted((Path(__file__).parent / "transcripts").glob("*.txt"))
FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(Settings)}


_sasl = sasl_policy({"bob": "s3cret"})


def policy(conn, event):
    if isinstance(event, EndOfData):
        if conn.state is State.BDAT:
            return replies.bdat_queued(event.size, QID)
        return replies.queued(QID)
    return _sasl(conn, event)


def convert(name: str, value: str):
    kind = str(FIELD_TYPES[name])
    if "bool" in kind:
        return value == "yes"
    if "int" in kind:
        return int(value)
    if "tuple" in kind:
        return tuple(value.split(","))
    return value


def parse(path: Path):
    opts, stats, steps = {}, None, []   # steps: list of ("C", bytes) / ("S", str)
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.startswith("# settings:"):
            for item in raw.split(":", 1)[1].split():
                k, v = item.split("=", 1)
                opts[k] = convert(k, v)
        elif raw.startswith("# stats:"):
            stats = raw.split(":", 1)[1].strip()
        elif raw.startswith("#") or not raw.strip():
            continue
        elif raw.startswith("C:"):
            steps.append(("C", raw[3:].encode("utf-8") + b"\r\n"))
        elif raw.startswith("C*"):
            steps.append(("C", codecs.escape_decode(raw[3:].encode("utf-8"))[0]))
        elif raw.startswith("S:"):
            steps.append(("S", raw[3:]))
        else:
            raise ValueError(f"{path.name}: bad line {raw!r}")
    return opts, stats, steps


def start(opts) -> tuple[ServerConnection, bytes]:
    conn = ServerConnection(settings(**opts))
    return conn, conn.send(replies.greeting(BANNER))


def expected_bytes(lines: list[str]) -> bytes:
    return "".join(line + "\r\n" for line in lines).encode("utf-8")


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_transcript_pipelined(path):
    opts, stats, steps = parse(path)
    conn, out = start(opts)
    res = Result()
    conn.receive_data(b"".join(data for kind, data in steps if kind == "C"))
    drain(conn, res, policy)
    assert (out + res.out).decode() == expected_bytes([t for k, t in steps if k == "S"]).decode()
    if stats is not None:
        assert conn.command_stats() == stats


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_transcript_lock_step(path):
    opts, stats, steps = parse(path)
    conn, out = start(opts)
    i = 0
    while i < len(steps):
        sent = b""
        while i < len(steps) and steps[i][0] == "C":
            sent += steps[i][1]
            i += 1
        want = []
        while i < len(steps) and steps[i][0] == "S":
            want.append(steps[i][1])
            i += 1
        res = Result()
        if sent:
            conn.receive_data(sent)
            drain(conn, res, policy)
            got = res.out
        else:
            got = out          # the greeting block
        assert got.decode() == expected_bytes(want).decode(), f"after {sent!r}"
    if stats is not None:
        assert conn.command_stats() == stats


def test_transcripts_exist():
    assert len(FILES) >= 5
