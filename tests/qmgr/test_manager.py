"""The queue manager against a real queue store, with fake agents in-process."""

from __future__ import annotations

import dataclasses
import time

import pytest
import structlog
import trio
from qmgr_fixtures import ROUTING, FakeAgents, all_as, empty, envelope, run, sent, wait_for

from mailsys.config.tables import DictTable
from mailsys.ipc.errors import IpcLost, IpcUnavailable
from mailsys.message.envelope import Notify, RcptState, Recipient
import mailsys.qmgr.manager as manager
from mailsys.qmgr.manager import SUSPENDED, TRANSPORT_UNAVAILABLE, QueueManager
from mailsys.qmgr.results import ADMIN_EXPIRED
from mailsys.qmgr.settings import Limits, QmgrSettings
from mailsys.queue import Admit, Queue, Remove

CONTENT = b"Subject: hi\r\n\r\nhello\r\n"


def events(logs, name):
    return [e for e in logs if e["event"] == name]


def test_delivered_and_removed(store, make_manager):
    agents = FakeAgents()
    mgr = make_manager(agents)
    qid = store.create(envelope("bob@remote.example", "carol@remote.example"), CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(empty(store))

    with structlog.testing.capture_logs() as logs:
        run(body)
    assert len(agents.requests) == 1
    req = agents.requests[0]
    assert (req.transport, req.nexthop, req.queue_id) == ("smtp", "remote.example", qid)
    assert [r.address for r in req.recipients] == ["bob@remote.example", "carol@remote.example"]
    opened = events(logs, "opened")
    assert opened == [dict(event="opened", queue_id=qid, sender="alice@example.com", size=20,
                           nrcpt=2, queue="active", log_level="info")]
    assert [e["queue_id"] for e in events(logs, "removed")] == [qid]


def test_requests_carry_the_client_of_smtp_mail_only(store, make_manager):
    # What smtp_send_xforward_command forwards: Postfix sends the client and
    # IDENT (upstream's, else the entry's own ID) of mail that came in over
    # SMTP, and only SOURCE=LOCAL for local submissions (seen live, 3.7.11).
    agents = FakeAgents()
    mgr = make_manager(agents)
    smtp = envelope("bob@one.example", client_name="mx.example.org", client_addr="192.0.2.7",
                    client_port=2525, helo="helo.example", protocol="ESMTPS",
                    rewrite_context="remote", attrs=(("origin", "smtpd"),))
    forwarded = smtp.replace(log_ident="UPSTREAM1")
    local = envelope("bob@two.example", protocol="local", rewrite_context="local",
                     attrs=(("origin", "sendmail"),))
    qids = [store.create(env, CONTENT) for env in (smtp, forwarded, local)]

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(empty(store))

    run(body)
    got = {r.queue_id: (r.client_name, r.client_addr, r.client_port, r.client_helo,
                        r.client_protocol, r.log_ident, r.rewrite_context)
           for r in agents.requests}
    client = ("mx.example.org", "192.0.2.7", 2525, "helo.example", "ESMTPS")
    assert got == {qids[0]: (*client, qids[0], "remote"), qids[1]: (*client, "UPSTREAM1", "remote"),
                   qids[2]: ("", "", 0, "", "", "", "local")}


@pytest.mark.parametrize("spec, expect", [
    ("relay:[127.0.0.1]:10025", {("relay", "[127.0.0.1]:10025")}),
    ("relay:", {("relay", "one.example"), ("relay", "two.example")}),
])
def test_a_filter_sends_every_recipient_to_its_transport(store, make_manager, spec, expect):
    # smtpd's FILTER action, as Postfix qmgr honours a content_filter record.
    agents = FakeAgents()
    mgr = make_manager(agents)
    env = envelope("bob@one.example", "carol@two.example")
    store.create(env.replace(attrs=env.attrs + (("filter", spec),)), CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(empty(store))

    run(body)
    assert {(r.transport, r.nexthop) for r in agents.requests} == expect
    assert sorted(a.address for r in agents.requests for a in r.recipients) == \
        ["bob@one.example", "carol@two.example"]


def _spy_writes(store):
    """The operations of every apply_many() commit, in order; a scan (Admit)
    as the IDs it moved, and not at all when it moved nothing."""
    commits = []
    apply_many = store.apply_many

    def spy(ops):
        ops = list(ops)
        outcomes = apply_many(ops)
        seen = [("Admit", tuple(e.queue_id for e in out.moved)) if isinstance(op, Admit)
                else (type(op).__name__, getattr(op, "qid", None) or op.qids)
                for op, out in zip(ops, outcomes)
                if not isinstance(op, Admit) or out.moved]
        if seen:
            commits.append(seen)
        return outcomes
    store.apply_many = spy
    return commits


def test_a_delivered_entry_is_removed_in_one_write(store, make_manager):
    mgr = make_manager(FakeAgents())
    commits = _spy_writes(store)
    qid = store.create(envelope("bob@remote.example", "carol@remote.example"), CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(empty(store))

    run(body)
    assert commits == [[("Admit", (qid,))], [("Remove", qid)]]


def test_results_are_recorded_before_a_deferral(store, make_manager):
    mgr = make_manager(FakeAgents(all_as("deferred", "4.2.1", "host said: 450 later")))
    commits = _spy_writes(store)
    qid = store.create(envelope("bob@remote.example"), CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(lambda: store.counts()[Queue.DEFERRED] == 1)

    run(body)
    assert commits == [[("Admit", (qid,))], [("Update", qid)], [("Update", qid)]]


def test_bounce_queues_the_notice_in_the_removing_commit(store, make_manager):
    def answer(req):
        if req.sender == "":
            return sent(req)          # the notice itself is delivered
        return all_as("bounced", "5.1.1", "host said: 550 5.1.1 no such user")(req)
    agents = FakeAgents(answer)
    mgr = make_manager(agents)
    qid = store.create(envelope("bob@remote.example"), CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(lambda: len(agents.requests) == 2 and empty(store)())

    with structlog.testing.capture_logs() as logs:
        run(body)
    assert [(n.queue_id, n.kind, n.indexes) for n in agents.notices] == [(qid, "failure", (0,))]
    notice = agents.requests[1]
    assert notice.sender == "" and [r.address for r in notice.recipients] == ["alice@example.com"]
    removed = [e["queue_id"] for e in events(logs, "removed")]
    assert removed == [qid, notice.queue_id]


def test_postmaster_copies_are_committed_with_the_removal(store, make_manager):
    def answer(req):
        if req.sender in ("", "double-bounce@example.test"):
            return sent(req)
        return all_as("bounced", "5.1.1", "host said: 550 5.1.1 no such user")(req)
    agents = FakeAgents(answer)
    agents.copy_to = "postmaster@example.test"
    mgr = make_manager(agents)
    qid = store.create(envelope("bob@remote.example"), CONTENT)
    commits = []
    apply_many = store.apply_many

    def spy(ops):
        ops = list(ops)
        commits.extend((op.qid, [(e.sender, e.recipients[0].address) for e, _ in op.notices])
                       for op in ops if isinstance(op, Remove))
        return apply_many(ops)
    store.apply_many = spy

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(lambda: len(agents.requests) == 3 and empty(store)())

    run(body)
    assert commits[0] == (qid, [("", "alice@example.com"),
                                ("double-bounce@example.test", "postmaster@example.test")])
    delivered = sorted((r.sender, r.recipients[0].address) for r in agents.requests[1:])
    assert delivered == [("", "alice@example.com"),
                         ("double-bounce@example.test", "postmaster@example.test")]


def test_deferred_with_back_off(store, make_manager):
    agents = FakeAgents(all_as("deferred", "4.2.1", "host said: 450 try later"))
    mgr = make_manager(agents, minimal_backoff_time=300, maximal_backoff_time=4000)
    qid = store.create(envelope("bob@remote.example", arrival_time=time.time() - 1000), CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(lambda: store.counts()[Queue.DEFERRED] == 1)

    before = time.time()
    run(body)
    env, queue = store.load(qid)
    assert queue is Queue.DEFERRED and env.attempts == 1
    # age is about 1000 s: between the minimum and the maximum
    assert before + 1000 - 1 <= env.next_attempt <= time.time() + 1000 + 1
    r = env.recipients[0]
    assert (r.state, r.dsn_status, r.reason) == (RcptState.DEFERRED, "4.2.1", "host said: 450 try later")
    assert env.last_reason == "host said: 450 try later"


def test_a_deferral_is_retried_on_its_own_timer(store, make_manager):
    # No trigger and no queue_run_delay tick (an hour): only the due time
    # qmgr noted when it deferred the entry brings the retry.
    answers = iter([all_as("deferred", "4.2.1", "host said: 450 try later"), sent])
    agents = FakeAgents(lambda req: next(answers)(req))
    mgr = make_manager(agents, minimal_backoff_time=1, maximal_backoff_time=1)
    qid = store.create(envelope("bob@remote.example"), CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(lambda: store.counts()[Queue.DEFERRED] == 1)
        await wait_for(lambda: not store.exists(qid), timeout=10)

    run(body)
    assert [r.queue_id for r in agents.requests] == [qid, qid]


def test_flush_retries_a_deferred_entry(store, make_manager):
    agents = FakeAgents(all_as("deferred", "4.2.1", "try later"))
    mgr = make_manager(agents)
    qid = store.create(envelope("bob@remote.example"), CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(lambda: store.counts()[Queue.DEFERRED] == 1)
        agents.answer = sent
        # what postqueue -f does: make it due, then poke
        await trio.to_thread.run_sync(lambda: store.update(qid, src=Queue.DEFERRED,
                                                           next_attempt=time.time()))
        mgr.request({b"F", b"A", b"D", b"I"})
        await wait_for(empty(store))

    run(body)
    assert len(agents.requests) == 2


def three_to_a_failing_agent(store, make_manager, error):
    """Three messages to one destination (concurrency 1) whose agent call
    raises error: (the requests made, the queue IDs, the log events)."""
    agents = FakeAgents()

    async def fail(req, timeout):
        agents.requests.append(req)
        raise error
    agents.deliver = fail
    mgr = make_manager(agents, limits=Limits(concurrency=1, initial=1, recipients=1))
    qids = [store.create(envelope("bob@remote.example"), CONTENT) for _ in range(3)]

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(lambda: store.counts()[Queue.DEFERRED] == 3)

    with structlog.testing.capture_logs() as logs:
        run(body)
    return agents.requests, qids, logs


def test_unreachable_agent_defers_and_suspends_the_destination(store, make_manager):
    requests, qids, logs = three_to_a_failing_agent(
        store, make_manager,
        IpcUnavailable("private/smtp: cannot connect: No such file or directory"))
    assert len(requests) == 1              # the others were not tried
    # Postfix's qmgr_deliver() defers a transport it cannot reach with
    # "4.3.0 mail transport unavailable", its waiting mail too (no
    # "delivery temporarily suspended: " before it).
    reasons = [store.load(q)[0].recipients[0].reason for q in qids]
    assert reasons == [TRANSPORT_UNAVAILABLE] * 3
    statuses = events(logs, "status")
    assert len(statuses) == 3 and all(
        (e["status"], e["relay"], e["dsn"], e["reason"]) ==
        ("deferred", "none", "4.3.0", TRANSPORT_UNAVAILABLE) for e in statuses)


def test_agent_that_dies_after_taking_the_request_is_an_unknown_error(store, make_manager):
    requests, qids, logs = three_to_a_failing_agent(
        store, make_manager, IpcLost("private/smtp: connection closed by the service"))
    assert len(requests) == 1
    # Postfix qmgr_deliver.c, DELIVER_STAT_CRASH: "unknown mail transport
    # error", not "mail transport unavailable". qmgr warns, writes no status
    # line for the crashed job's recipients, and the waiting mail of the
    # destination is "delivery temporarily suspended: " that (seen live
    # with Postfix 3.7.11).
    [crashed] = [r.queue_id for r in requests]
    reasons = {q: store.load(q)[0].recipients[0].reason for q in qids}
    assert reasons[crashed] == "unknown mail transport error"
    assert all(reasons[q] == SUSPENDED + "unknown mail transport error"
               for q in qids if q != crashed)
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "private/smtp socket: malformed response"]
    statuses = events(logs, "status")
    assert sorted(e["queue_id"] for e in statuses) == sorted(q for q in qids if q != crashed)
    assert all((e["status"], e["relay"], e["dsn"], e["reason"]) ==
               ("deferred", "none", "4.3.0", SUSPENDED + "unknown mail transport error")
               for e in statuses)


def test_dead_destination_suspends_only_itself(store, make_manager):
    def answer(req):
        if req.nexthop == "down.example":
            return all_as("deferred", "4.4.2", "lost connection with down.example[192.0.2.1] "
                          "while receiving the initial server greeting", dead=True)(req)
        return sent(req)
    agents = FakeAgents(answer)
    mgr = make_manager(agents, limits=Limits(concurrency=1, initial=1, recipients=1))
    down = [store.create(envelope("x@down.example"), CONTENT) for _ in range(3)]
    up = [store.create(envelope("y@up.example"), CONTENT) for _ in range(3)]

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(lambda: store.counts()[Queue.DEFERRED] == 3
                       and store.counts()[Queue.ACTIVE] == 0 and not mgr.active)

    with structlog.testing.capture_logs() as logs:
        run(body)
    assert [r.nexthop for r in agents.requests].count("down.example") == 1
    assert sorted(store.list(Queue.DEFERRED)) == sorted(down)
    assert not any(store.exists(q) for q in up)
    lost = ("lost connection with down.example[192.0.2.1] while receiving the initial "
            "server greeting")
    assert store.load(down[2])[0].recipients[0].reason == SUSPENDED + lost
    # qmgr_deliver.c: the others are deferred with the status of the
    # failure that killed the destination, not a fixed 4.4.1.
    suspended = [(e["dsn"], e["reason"]) for e in events(logs, "status")]
    assert suspended == [("4.4.2", SUSPENDED + lost)] * 2


def test_bounce_down_keeps_the_entry_until_the_notice_is_queued(store, make_manager):
    agents = FakeAgents(all_as("bounced", "5.1.1", "no such user"))
    agents.bounce_down = True
    mgr = make_manager(agents)
    qid = store.create(envelope("bob@remote.example"), CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(lambda: store.counts()[Queue.DEFERRED] == 1 and not mgr.active)
        env, _ = store.load(qid)
        assert env.recipients[0].state is RcptState.BOUNCED and not env.recipients[0].notified
        agents.bounce_down = False
        agents.answer = sent
        await trio.to_thread.run_sync(lambda: store.update(qid, src=Queue.DEFERRED,
                                                           next_attempt=time.time()))
        mgr.request({b"D"})
        await wait_for(lambda: not store.exists(qid))

    run(body)
    assert len(agents.requests) >= 1
    # the bounced recipient was not delivered again; the notice went out
    assert [r.queue_id for r in agents.requests].count(qid) == 1
    assert len(agents.notices) == 2


def test_entries_left_active_are_delivered_after_a_restart(store, make_manager):
    agents = FakeAgents()
    qid = store.create(envelope("bob@remote.example"), CONTENT)
    store.move(qid, Queue.INCOMING, Queue.ACTIVE)        # a qmgr died here
    mgr = make_manager(agents)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(empty(store))

    run(body)
    assert [r.queue_id for r in agents.requests] == [qid]


def test_a_bounce_recorded_before_a_crash_still_gets_its_notice(store, make_manager):
    # qmgr recorded the bounce, then died before the notice was committed.
    agents = FakeAgents()
    qid = store.create(envelope("bob@remote.example", "carol@remote.example"), CONTENT)
    store.move(qid, Queue.INCOMING, Queue.ACTIVE)
    store.update(qid, src=Queue.ACTIVE, rcpt={
        0: dict(state=RcptState.BOUNCED, dsn_status="5.1.1", reason="said: 550 no such user"),
        1: dict(state=RcptState.SENT, dsn_status="2.0.0", reason="250 Ok")})
    mgr = make_manager(agents)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(lambda: not store.exists(qid) and len(agents.requests) == 1)

    with structlog.testing.capture_logs() as logs:
        run(body)
    assert [(n.queue_id, n.kind, n.indexes) for n in agents.notices] == [(qid, "failure", (0,))]
    assert [r.sender for r in agents.requests] == [""]      # only the notice is delivered
    assert [e["queue_id"] for e in events(logs, "removed")][0] == qid


def test_recover_moves_active_back_to_incoming(store, make_manager):
    qids = [store.create(envelope("bob@remote.example"), CONTENT) for _ in range(3)]
    for q in qids[:2]:
        store.move(q, Queue.INCOMING, Queue.ACTIVE)
    mgr = make_manager(FakeAgents())
    assert trio.run(mgr.recover) == 2
    assert sorted(store.list(Queue.INCOMING)) == sorted(qids)


def test_held_entries_are_never_touched(store, make_manager):
    agents = FakeAgents()
    held = store.create(envelope("bob@remote.example"), CONTENT, queue=Queue.HOLD)
    other = store.create(envelope("bob@remote.example"), CONTENT)
    mgr = make_manager(agents)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(lambda: not store.exists(other))
        mgr.request({b"A", b"D", b"I", b"W"})
        await trio.sleep(0.2)

    run(body)
    assert [r.queue_id for r in agents.requests] == [other]
    assert store.load(held)[1] is Queue.HOLD


def test_an_entry_deleted_during_delivery_is_dropped_quietly(store, make_manager):
    agents = FakeAgents()
    agents.release = trio.Event()
    mgr = make_manager(agents)
    qid = store.create(envelope("bob@remote.example"), CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(lambda: len(agents.requests) == 1)
        await trio.to_thread.run_sync(lambda: store.remove_many([qid]))   # postsuper -d
        agents.release.set()
        await wait_for(lambda: not mgr.active)

    with structlog.testing.capture_logs() as logs:
        run(body)
    assert events(logs, "removed") == []
    assert not [e for e in logs if e["log_level"] in ("error", "critical")]


def test_concurrency_per_destination_is_never_exceeded(store, make_manager):
    agents = FakeAgents()
    agents.delay = 0.02
    mgr = make_manager(agents, limits=Limits(concurrency=2, initial=1, recipients=50))
    for i in range(12):
        store.create(envelope(f"u{i}@one.example", f"v{i}@two.example"), CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(empty(store), timeout=10)

    run(body)
    assert len(agents.requests) == 24
    assert agents.most == {("smtp", "one.example"): 2, ("smtp", "two.example"): 2}


def test_forced_expiry_returns_without_trying(store, make_manager):
    # Postfix 3.7.11, "postsuper -e" on a held message never tried, then
    # released: "error[..]: QID: to=<bob@remote.example>, relay=none, ...,
    # dsn=4.7.0, status=deferred (message is administratively expired)"
    # for each recipient, then "qmgr[..]: QID: from=<...>, status=force-expired,
    # returned to sender"; the notice says "Status: 4.7.0".
    agents = FakeAgents()
    qid = store.create(envelope("bob@remote.example", "carol@remote.example"), CONTENT)
    store.update(qid, src=Queue.INCOMING, dst=Queue.DEFERRED, next_attempt=time.time(),
                 forced_expire=True)
    mgr = make_manager(agents)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(lambda: not store.exists(qid))

    with structlog.testing.capture_logs() as logs:
        run(body)
    assert qid not in [r.queue_id for r in agents.requests]
    assert [(e["event"], e.get("to"), e["status"], e.get("dsn"), e.get("reason"))
            for e in logs if e["event"] in ("status", "expired")] == [
        ("status", "bob@remote.example", "deferred", "4.7.0", ADMIN_EXPIRED),
        ("status", "carol@remote.example", "deferred", "4.7.0", ADMIN_EXPIRED),
        ("expired", None, "force-expired", None, None)]
    assert [(n.queue_id, n.kind) for n in agents.notices] == [(qid, "failure")]


def test_natural_expiry_after_the_last_try(store, make_manager):
    agents = FakeAgents(all_as("deferred", "4.4.1", "connect to x: Connection refused"))
    mgr = make_manager(agents, maximal_queue_lifetime=0)      # try once
    qid = store.create(envelope("bob@remote.example"), CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(lambda: not store.exists(qid))

    with structlog.testing.capture_logs() as logs:
        run(body)
    assert [r.queue_id for r in agents.requests].count(qid) == 1
    assert [(e["queue_id"], e["status"], e["sender"]) for e in events(logs, "expired")] == \
        [(qid, "expired", "alice@example.com")]


def test_null_sender_mail_expires_on_the_bounce_lifetime(store, make_manager):
    agents = FakeAgents(all_as("deferred", "4.4.1", "try later"))
    mgr = make_manager(agents, bounce_queue_lifetime=0, maximal_queue_lifetime=86400)
    bounce = store.create(envelope("bob@remote.example", sender=""), CONTENT)
    normal = store.create(envelope("bob@remote.example"), CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(lambda: not store.exists(bounce) and store.counts()[Queue.DEFERRED] == 1)

    run(body)
    assert store.load(normal)[1] is Queue.DEFERRED


@pytest.mark.parametrize("limit", [1, 3])
def test_active_limit_bounds_the_active_queue(store, make_manager, limit):
    agents = FakeAgents()
    agents.release = trio.Event()
    mgr = make_manager(agents, active_limit=limit)
    for _ in range(5):
        store.create(envelope("bob@remote.example"), CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(lambda: len(agents.requests) == limit)
        await trio.sleep(0.1)
        assert store.counts()[Queue.ACTIVE] == limit and store.counts()[Queue.INCOMING] == 5 - limit
        agents.release.set()
        await wait_for(empty(store))

    run(body)


def test_error_transport_bounces_without_an_agent(store, make_manager):
    agents = FakeAgents()
    mgr = make_manager(agents)
    qid = store.create(envelope("nobody@alias.example", "bob@remote.example"), CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(lambda: not store.exists(qid))

    with structlog.testing.capture_logs() as logs:
        run(body)
    assert [(r.transport, [x.address for x in r.recipients]) for r in agents.requests
            if r.queue_id == qid] == [("smtp", ["bob@remote.example"])]
    [status] = [e for e in events(logs, "status") if e["queue_id"] == qid]
    assert (status["to"], status["relay"], status["dsn"], status["status"], status["reason"]) == \
        ("nobody@alias.example", "none", "5.1.1", "bounced", "User unknown in virtual alias table")
    assert [(n.queue_id, n.indexes) for n in agents.notices] == [(qid, (0,))]


def test_discard_transport_reports_sent_without_an_agent(store):
    # transport_maps "discard:" as Postfix 3.7.11's discard(8) logs it:
    # "to=<spam@x.example>, relay=none, ..., dsn=2.0.0, status=sent (x.example)".
    table = DictTable("inline:t", {"spam@x.example": "discard:",
                                   "trap.example": "discard:gone to the trap"})
    agents = FakeAgents()
    mgr = QueueManager(store, QmgrSettings(queue_run_delay=3600),
                       dataclasses.replace(ROUTING, transport_maps=(table,)),
                       lambda transport: Limits(), agents)
    qid = store.create(envelope("spam@x.example", "u@trap.example", "bob@remote.example"),
                       CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(lambda: not store.exists(qid))

    with structlog.testing.capture_logs() as logs:
        run(body)
    assert [[x.address for x in r.recipients] for r in agents.requests] == [["bob@remote.example"]]
    found = {e["to"]: (e["relay"], e["dsn"], e["status"], e["reason"])
             for e in events(logs, "status") if e["queue_id"] == qid}
    assert found == {"spam@x.example": ("none", "2.0.0", "sent", "x.example"),
                     "u@trap.example": ("none", "2.0.0", "sent", "gone to the trap")}
    assert agents.notices == []


def test_mail_to_the_local_double_bounce_address_is_discarded(store, make_manager):
    # Postfix qmgr_message.c: a recipient of a local domain whose local part
    # is $double_bounce_sender is reported "sent" with relay=none and
    # "undeliverable postmaster notification discarded", and delivered
    # nowhere (a bounce of our own postmaster notice, come back).
    agents = FakeAgents()
    mgr = make_manager(agents)
    qid = store.create(envelope("Double-Bounce@example.test", "double-bounce@remote.example",
                                sender=""), CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(lambda: not store.exists(qid))

    with structlog.testing.capture_logs() as logs:
        run(body)
    assert [[x.address for x in r.recipients] for r in agents.requests] == [
        ["double-bounce@remote.example"]]
    [found] = [(e["to"], e["relay"], e["dsn"], e["status"], e["reason"])
               for e in events(logs, "status")]
    assert found == ("Double-Bounce@example.test", "none", "2.0.0", "sent",
                     "undeliverable postmaster notification discarded")
    assert agents.notices == []


def test_delay_warning_once_while_deferred(store, make_manager):
    refused = all_as("deferred", "4.4.1", "connect to x: Connection refused")
    agents = FakeAgents(lambda req: sent(req) if req.sender == "" else refused(req))
    mgr = make_manager(agents, delay_warning_time=60)
    qid = store.create(envelope("bob@remote.example", arrival_time=time.time() - 120), CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(lambda: store.counts()[Queue.DEFERRED] == 1 and not mgr.active)
        await trio.to_thread.run_sync(lambda: store.update(qid, src=Queue.DEFERRED,
                                                           next_attempt=time.time()))
        mgr.request({b"D"})
        await wait_for(lambda: [r.queue_id for r in agents.requests].count(qid) == 2)
        await wait_for(lambda: store.counts()[Queue.DEFERRED] == 1 and not mgr.active)

    run(body)
    assert [(n.queue_id, n.kind, n.indexes) for n in agents.notices] == [(qid, "delay", (0,))]
    env, queue = store.load(qid)
    assert env.delay_warned and queue is Queue.DEFERRED and env.attempts == 2
    # the warning itself was queued as its own entry and delivered
    assert any(r.sender == "" for r in agents.requests)


def test_an_orphaned_active_entry_is_swept_back_and_delivered(store, make_manager):
    agents = FakeAgents()
    mgr = make_manager(agents, queue_run_delay=0.2)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await trio.sleep(0.05)
        # an entry in active that no task holds (a failed store write left it)
        qid = await trio.to_thread.run_sync(
            lambda: store.create(envelope("bob@remote.example"), CONTENT, queue=Queue.ACTIVE))
        await wait_for(lambda: not store.exists(qid))
        return qid

    run(body)
    assert len(agents.requests) == 1


def test_notify_success_queues_a_success_report_with_the_removal(store, make_manager):
    agents = FakeAgents()
    mgr = make_manager(agents)
    env = envelope("bob@remote.example")
    env = env.replace(recipients=(Recipient("bob@remote.example", notify=(Notify.SUCCESS,)),))
    qid = store.create(env, CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(lambda: not store.exists(qid) and empty(store)())

    run(body)
    assert [(n.queue_id, n.kind, n.indexes) for n in agents.notices] == [(qid, "success", (0,))]
    assert [r.sender for r in agents.requests] == ["alice@example.com", ""]


def test_recipient_limit_bounds_the_active_queue_but_lets_one_big_entry_in(store, make_manager):
    agents = FakeAgents()
    agents.release = trio.Event()
    mgr = make_manager(agents, recipient_limit=3)
    big = store.create(envelope(*(f"u{i}@remote.example" for i in range(5))), CONTENT)
    small = [store.create(envelope("bob@remote.example"), CONTENT) for _ in range(4)]

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(lambda: len(agents.requests) == 1)
        await trio.sleep(0.1)
        assert list(mgr.active) == [big]                 # 5 recipients: over the limit alone
        agents.release.set()
        await wait_for(empty(store))

    run(body)
    assert sorted(r.queue_id for r in agents.requests[1:]) == sorted(small)


def test_stopping_lets_deliveries_in_flight_end_and_be_recorded(store, make_manager):
    agents = FakeAgents()
    agents.delay = 0.3
    mgr = make_manager(agents)
    qid = store.create(envelope("bob@remote.example"), CONTENT)

    async def main():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(mgr.run)
            await wait_for(lambda: len(agents.requests) == 1)
            nursery.cancel_scope.cancel()          # SIGTERM: the skeleton cancels the loop

    with structlog.testing.capture_logs() as logs:
        trio.run(main)
    assert not store.exists(qid)
    assert [e["queue_id"] for e in events(logs, "removed")] == [qid]


def test_stopping_gives_up_on_a_hung_delivery_after_the_grace(store, make_manager, monkeypatch):
    monkeypatch.setattr(manager, "STOP_GRACE", 0.2)
    agents = FakeAgents()
    agents.release = trio.Event()                  # never answers
    mgr = make_manager(agents)
    qid = store.create(envelope("bob@remote.example"), CONTENT)

    async def main():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(mgr.run)
            await wait_for(lambda: len(agents.requests) == 1)
            nursery.cancel_scope.cancel()

    started = time.monotonic()
    trio.run(main)
    assert time.monotonic() - started < 3
    assert store.load(qid)[1] is Queue.ACTIVE      # put back in incoming at the next start


def test_an_unreadable_entry_is_quarantined_and_the_others_delivered(store, make_manager):
    agents = FakeAgents()
    mgr = make_manager(agents)
    bad = store.create(envelope("bob@remote.example"), CONTENT)
    good = store.create(envelope("carol@remote.example"), CONTENT)

    def spoil(txn):
        txn.put(bad.encode(), b"\x07garbage", db=store._envelopes)
    store._write(spoil, 100)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(empty(store, Queue.INCOMING, Queue.ACTIVE))

    with structlog.testing.capture_logs() as logs:
        run(body)
    assert [r.queue_id for r in agents.requests] == [good]
    assert list(store.list(Queue.CORRUPT)) == [bad]
    warned = [e["event"] for e in logs if e["log_level"] == "warning"]
    assert len(warned) == 1 and warned[0].startswith(
        f"{bad}: unreadable queue entry, moved to the corrupt queue: ")


@pytest.mark.parametrize("status, dsn, verified", [
    ("sent", "2.1.5", 0), ("bounced", "5.1.1", 2), ("deferred", "4.2.0", 1)])
def test_a_probe_reports_to_verify_and_leaves_without_a_notice(store, make_manager, status,
                                                               dsn, verified):
    agents = FakeAgents(all_as(status, dsn, f"host said: {dsn} answer"))
    mgr = make_manager(agents)
    env = envelope("bob@remote.example", sender="double-bounce@example.test",
                   attrs=(("trace_flags", "mta_vrfy"),))
    qid = store.create(dataclasses.replace(
        env, recipients=(Recipient("bob@remote.example", orig="Bob@Remote.example"),)), b"")

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(empty(store))

    with structlog.testing.capture_logs() as logs:
        run(body)
    [req] = agents.requests
    assert req.probe and req.queue_id == qid
    # Under the address as asked and as rewritten (Postfix verify_append).
    assert [(u.address, u.status, u.text) for u in agents.verified] == [
        ("Bob@Remote.example", verified, f"host said: {dsn} answer"),
        ("bob@remote.example", verified, f"host said: {dsn} answer")]
    assert agents.notices == []
    assert [e["queue_id"] for e in events(logs, "removed")] == [qid]


def test_an_unreachable_agent_makes_a_probe_undeliverable(store, make_manager):
    agents = FakeAgents()

    async def down(req, timeout):
        raise IpcUnavailable("private/smtp: cannot connect: Connection refused")
    agents.deliver = down
    mgr = make_manager(agents)
    qid = store.create(envelope("bob@remote.example", attrs=(("trace_flags", "mta_vrfy"),)), b"")

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(empty(store))

    with structlog.testing.capture_logs() as logs:
        run(body)
    [status] = events(logs, "status")
    assert (status["queue_id"], status["status"], status["reason"]) == (
        qid, "undeliverable", TRANSPORT_UNAVAILABLE)
    assert [(u.status, u.text) for u in agents.verified] == [(1, TRANSPORT_UNAVAILABLE)]


def test_defer_transports_defers_until_a_flush_request(store, make_manager):
    agents = FakeAgents()
    mgr = make_manager(agents, defer_transports=frozenset({"smtp"}))
    qid = store.create(envelope("bob@remote.example"), CONTENT)

    async def body(nursery):
        nursery.start_soon(mgr.run)
        await wait_for(lambda: store.counts()[Queue.DEFERRED] == 1 and not mgr.active)
        assert agents.requests == []
        r = store.load(qid)[0].recipients[0]
        assert (r.reason, r.dsn_status) == ("deferred transport", "4.3.2")
        # a deferred scan without "F" (a queue run) defers it again
        store.update(qid, src=Queue.DEFERRED, next_attempt=0)
        mgr.request([b"D"])
        await wait_for(lambda: store.load(qid)[0].attempts == 2 and not mgr.active)
        assert agents.requests == []
        # postqueue -f: due now, then "F" with the scan requests
        store.update(qid, src=Queue.DEFERRED, next_attempt=0)
        mgr.request([b"F", b"A", b"D", b"I"])
        await wait_for(empty(store))

    run(body)
    assert [req.queue_id for req in agents.requests] == [qid]
