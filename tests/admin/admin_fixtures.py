"""Helpers for the admin tool tests: sample entries in every queue state,
and running a tool in-process (with the store closed) or as a real process.
The fixtures that use them are in conftest.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mailsys.cli.main import main as mailsys_main
from mailsys.message.envelope import Envelope, RcptState, Recipient
from mailsys.queue import Queue, QueueStore

# Postfix 3.7.11 output (postfix-compat.md, postfix-samples/), kept as goldens.
SAMPLES = Path(__file__).parent / "samples"
REFUSED = "connect to 127.0.0.1[127.0.0.1]:2: Connection refused"
TIMEOUT = "conversation with mx.remote.example[192.0.2.25] timed out while receiving the initial server greeting"
LONG = ("host mx.far.example[198.51.100.7] said: 451 4.7.1 Greylisting in action, "
        "please come back later; see https://far.example/greylisting for details")
CONTENT = (b"Received: from client.example.org (client.example.org [192.0.2.10])\r\n"
           b"\tby mx.example.com (mailsys) with ESMTP id X\r\n"
           b"From: alice@example.com\r\n"
           b"Subject: test\r\n"
           b"\r\n"
           b"first body line\r\n"
           b"\r\n"
           b"last body line\r\n")


@dataclass
class Setup:
    config_dir: Path
    queue_dir: Path


def rcpt(address: str, state: RcptState = RcptState.PENDING, reason: str = "", **kw) -> Recipient:
    return Recipient(address, state=state, reason=reason, **kw)


D, P, S, B = RcptState.DEFERRED, RcptState.PENDING, RcptState.SENT, RcptState.BOUNCED
BASE = 1795738922


def sample_entries() -> list[tuple[str, Envelope, Queue]]:
    """(name, envelope, queue): every queue state, sender forms and reason
    patterns the listing has to get right."""
    return [
        ("active", Envelope(
            queue_id="", sender="alice@example.com", arrival_time=BASE + 21, size=4533,
            recipients=(rcpt("frank@other.example", D, REFUSED),
                        rcpt("erin@remote.example", D, REFUSED),
                        rcpt("done@remote.example", S, "250 ok"),
                        rcpt("new@other.example"))), Queue.ACTIVE),
        ("incoming", Envelope(
            queue_id="", sender="carol@example.com", arrival_time=BASE + 30, size=1000,
            recipients=(rcpt('john doe@example.net'), rcpt("x\x01y@example.net"))),
         Queue.INCOMING),
        ("bounce", Envelope(
            queue_id="", sender="", arrival_time=BASE, size=337,
            recipients=(rcpt("gone@remote.example", B, "550 no such user"),
                        rcpt("a@remote.example", D, REFUSED),
                        rcpt("b@remote.example", D, TIMEOUT),
                        rcpt("c@remote.example", D, TIMEOUT),
                        rcpt("d@remote.example", D, ""),
                        rcpt("e@remote.example", D, TIMEOUT))), Queue.DEFERRED),
        ("long", Envelope(
            queue_id="", sender="dave@example.com", arrival_time=BASE + 5, size=2048,
            recipients=(rcpt("zoe@far.example", D, LONG),)), Queue.DEFERRED),
        ("held", Envelope(
            queue_id="", sender="bob@example.com", arrival_time=BASE + 21, size=4559,
            forced_expire=True,
            recipients=(rcpt("hank@remote.example", D, REFUSED),)), Queue.HOLD),
    ]


def populate(queue_dir: Path) -> dict[str, str]:
    """Create the sample entries; name -> queue ID. The store is closed on
    return so the tool under test can open it in this process."""
    ids = {}
    with QueueStore.open(queue_dir) as store:
        for name, env, queue in sample_entries():
            ids[name] = store.create(env, CONTENT, queue)
    return ids


def entries(queue_dir: Path) -> dict[str, tuple[Envelope, Queue]]:
    with QueueStore.open(queue_dir) as store:
        return {env.queue_id: (env, q) for env, q in store.scan_all(
            (Queue.ACTIVE, Queue.INCOMING, Queue.DEFERRED, Queue.HOLD))}


def run_tool(capsys, setup: Setup, *args: str, stdin: str | None = None,
             monkeypatch=None) -> tuple[int, str, str]:
    """Run `mailsys -c DIR args...` in this process; (status, stdout, stderr)."""
    if stdin is not None:
        import io
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    status = mailsys_main(["-c", str(setup.config_dir), *args])
    out, err = capsys.readouterr()
    return status, out, err


def log_lines(setup: Setup) -> list[str]:
    """The lines of the mail log the setup's main.cf names, without the
    time, host and pid: "mailsys/sendmail: fatal: ..."."""
    path = setup.config_dir.parent / "log" / "mail.log"
    text = path.read_text() if path.exists() else ""
    return [re.sub(r"^.*? (\S+)\[\d+\]: ", r"\1: ", line) for line in text.splitlines()]


def run_process(setup: Setup, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    """Run `python -m mailsys.cli.main -c DIR args...` as a real process."""
    return subprocess.run([sys.executable, "-m", "mailsys.cli.main",
                           "-c", str(setup.config_dir), *args],
                          input=stdin, capture_output=True, text=True, timeout=30,
                          env={**os.environ})
