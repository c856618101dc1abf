"""postsuper -r's pieces without a running mail system: what cleanup is
sent, and what becomes of the old entry once the new one is committed."""

from __future__ import annotations

import time

from mailsys.cli.postsuper_requeue import Requeuer, owes_notice, request_for
from mailsys.config import load
from mailsys.message.envelope import Envelope, Notify, RcptState, Recipient
from mailsys.queue import Queue, QueueStore

from admin_fixtures import CONTENT

D, P, S, B = RcptState.DEFERRED, RcptState.PENDING, RcptState.SENT, RcptState.BOUNCED


def envelope(*recipients: Recipient, **kw) -> Envelope:
    return Envelope(queue_id="", sender="alice@example.com", recipients=recipients,
                    arrival_time=1795738922.5, size=len(CONTENT), **kw)


def test_cleanup_gets_the_recipients_not_done_and_the_message_as_queued():
    env = envelope(Recipient("sent@x.example", state=S),
                   Recipient("later@x.example", state=D, reason="try later",
                             orig="Later@x.example", orcpt="rfc822;later@x.example",
                             notify=(Notify.SUCCESS, Notify.FAILURE)),
                   Recipient("bounced@x.example", state=B),
                   Recipient("new@x.example"),
                   client_name="client.example.org", client_addr="192.0.2.10", helo="c.example",
                   protocol="ESMTPSA", sasl_user="alice", rewrite_context="local",
                   envid="E1", ret="HDRS", smtputf8=True, attempts=3, forced_expire=True,
                   attrs=(("origin", "smtpd"), ("filter", "scan:[127.0.0.1]:10025"))
                   ).replace(queue_id="4jbJDG3zVyz09x4")
    req = request_for(env, CONTENT, "4jbJDH0000z09x5", uid=1000)
    assert [(r.address, r.orig, r.orcpt, r.notify) for r in req.recipients] == [
        ("later@x.example", "Later@x.example", "rfc822;later@x.example", ("SUCCESS", "FAILURE")),
        ("new@x.example", "", "", ())]
    assert (req.queue_id, req.requeued_from, req.uid) == ("4jbJDH0000z09x5", "4jbJDG3zVyz09x4", 1000)
    assert (req.sender, req.content, req.arrival_time) == ("alice@example.com", CONTENT, 1795738922.5)
    assert (req.origin, req.local, req.client_name, req.client_addr, req.helo, req.protocol,
            req.sasl_user) == ("smtpd", True, "client.example.org", "192.0.2.10", "c.example",
                               "ESMTPSA", "alice")
    assert (req.envid, req.ret, req.smtputf8) == ("E1", "HDRS", True)
    # A content filter chosen at arrival still applies.
    assert req.filter == "scan:[127.0.0.1]:10025"


def test_nothing_to_send_when_every_recipient_is_done():
    env = envelope(Recipient("a@x.example", state=S), Recipient("b@x.example", state=B))
    assert request_for(env, CONTENT, "4jbJDH0000z09x5", uid=0) is None


def test_owed_notices():
    assert owes_notice(Recipient("a@x", state=B))
    assert not owes_notice(Recipient("a@x", state=B, notified=True))
    assert owes_notice(Recipient("a@x", state=S, notify=(Notify.SUCCESS,)))
    assert not owes_notice(Recipient("a@x", state=S))
    assert not owes_notice(Recipient("a@x", state=D))


def test_old_entry_is_removed_or_kept_for_the_notice_it_owes(setup):
    cfg = load(setup.config_dir)
    with QueueStore.open(setup.queue_dir) as store:
        quiet = store.create(envelope(Recipient("s@x", state=S), Recipient("d@x", state=D)),
                             CONTENT)
        owing = store.create(envelope(Recipient("b@x", state=B), Recipient("d@x", state=D)),
                             CONTENT)
        store.move(quiet, Queue.INCOMING, Queue.DEFERRED)
        store.move(owing, Queue.INCOMING, Queue.ACTIVE)
        requeuer = Requeuer(cfg, store)
        before = time.time()
        for qid in (quiet, owing):
            requeuer._retire(store.load(qid)[0], "4jbJDH0000z09x5")
        assert not store.exists(quiet)
        env, queue = store.load(owing)
        # The bounce notice is still owed: qmgr sends it; the requeued
        # recipient is done here, with no notice of its own.
        assert queue is Queue.ACTIVE and before <= env.next_attempt <= time.time()
        assert [(r.state, r.notified) for r in env.recipients] == [(B, False), (S, True)]
        assert env.recipients[1].reason == "requeued as 4jbJDH0000z09x5"
        requeuer.close()
