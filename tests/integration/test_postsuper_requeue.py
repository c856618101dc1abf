"""postsuper -r against a running mail system: the message goes through cleanup again.

Postfix 3.7.11, checked on a private instance: the requeued message gets a
new queue ID (pickup logs "NEW: uid=N from=<s> orig_id=OLD"), header_checks
and a new Received: header apply again (the warning line names the original
client), only the recipients not yet done come along, and the arrival time
is kept. A message cleanup now refuses stays as it was (mailsys: Postfix's pickup
would return it to the sender).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

here = Path(__file__).parent
live = SimpleNamespace(**__import__("runpy").run_path(str(here / "live_site.py")))
sinks = SimpleNamespace(**__import__("runpy").run_path(str(here / "smtpsink.py")))

pytestmark = pytest.mark.integration


@pytest.fixture
def make_site(mailsys_instance, tmp_path):
    """A running site whose header_checks are the given lines."""
    sink = sinks.SmtpSink(rcpt={"later@slow.test": "450 4.2.0 try later"})
    with sinks.SinkThread(sink) as port:
        def make(checks: str = "", **main_cf: str):
            (tmp_path / "header_checks").write_text(checks)
            return live.build(mailsys_instance, tmp_path, port,
                              main_cf={"header_checks": f"regexp:{tmp_path}/header_checks",
                                       **main_cf})
        yield make


def deferred(site, *rcpts: str, subject: str) -> str:
    qid = site.send("alice@example.com", *rcpts, subject=subject)
    site.inst.wait_until(lambda: site.queue_of(qid) == "deferred", timeout=20)
    return qid


def test_requeued_message_gets_a_new_id_and_cleanup_again(make_site):
    site = make_site("/^Subject: tagme/ WARN subject seen\n")
    inst = site.inst
    old = deferred(site, "now@ok.test", "later@slow.test", subject="tagme")
    assert f"{old}: to=<now@ok.test>" in inst.log_text()
    arrival = json.loads(site.tool("postqueue", "-j").stdout)["arrival_time"]

    r = site.tool("postsuper", "-r", old)
    assert r.returncode == 0
    assert r.stderr == f"postsuper: {old}: requeued\npostsuper: Requeued: 1 message\n"
    inst.wait_log(f" orig_id={old}\n")
    [new] = re.findall(rf"/pickup\[\d+\]: (\w+): uid={os.getuid()} "
                       rf"from=<alice@example.com> orig_id={old}$", inst.log_text(), re.M)
    assert new != old
    log = inst.wait_log(f"{new}: to=<later@slow.test>", timeout=20)
    # header_checks again, under the new ID, naming the client the message came from.
    assert re.search(rf"/cleanup\[\d+\]: {new}: warning: header Subject: tagme from "
                     rf"\S+\[127\.0\.0\.1\]; from=<alice@example.com> to=<later@slow.test> "
                     rf"proto=ESMTP helo=<client.example.org>: subject seen$", log, re.M)
    # Only the recipient not yet done; delivered ones are not sent again.
    assert re.search(rf"/qmgr\[\d+\]: {new}: from=<alice@example.com>, size=\d+, nrcpt=1 "
                     rf"\(queue active\)$", log, re.M)
    assert f"{new}: to=<now@ok.test>" not in log
    inst.wait_until(lambda: site.queue_of(new) == "deferred", timeout=10)
    assert site.queue_of(old) is None
    [entry] = [json.loads(line) for line in site.tool("postqueue", "-j").stdout.splitlines()]
    assert entry["queue_id"] == new and entry["arrival_time"] == arrival
    assert [r["address"] for r in entry["recipients"]] == ["later@slow.test"]


def test_message_cleanup_refuses_stays_as_it_was(make_site):
    # The message as smtpd took it fits; as queued, with the Received:
    # header cleanup added, it does not: cleanup refuses the requeue.
    site = make_site(message_size_limit="200")
    old = deferred(site, "later@slow.test", subject="plain")
    before = site.tool("postcat", "-q", old).stdout
    r = site.tool("postsuper", "-r", old)
    assert r.returncode == 0
    assert r.stderr == (f"postsuper: warning: {old}: not requeued: 552 5.3.4 Error: message "
                        "file too big; "
                        "the message stays as it was\n"
                        "postsuper: Requeued: 0 messages\n")
    assert site.queue_of(old) == "deferred"
    assert site.tool("postcat", "-q", old).stdout == before
