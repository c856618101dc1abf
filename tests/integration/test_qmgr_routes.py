"""End to end through a real master: next hops, DNS verdicts, loops, lifetimes
and the scheduler's pacing, each checked in mail.log, the peers and the
Maildirs, with log lines read the way pflogsumm reads them."""

from __future__ import annotations

import email
import email.policy
import os
import re
import runpy
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

from mailsys.message.envelope import Notify

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("agent_helpers.py"))))
qh = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("qmgr_helpers.py"))))

pytestmark = pytest.mark.integration

CONTENT = (b"From: alice@example.com\r\nTo: bob@remote.test\r\nSubject: routes\r\n"
           b"Message-Id: <routes@example.com>\r\n\r\nHello.\r\n")
SERVICES = ["qmgr unix n - n 300 1 qmgr", "bounce unix - - n - 0 bounce",
            "smtp unix - - n - - smtp", "virtual unix - n n - - local"]

# pflogsumm 1.1.5 (postfix-compat.md 4.6): the line, the tag, a delivery.
PFLOG_LINE = re.compile(r"^(...) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) \S+ (.+)$")
PFLOG_TAG = re.compile(r"^(?:postfix|mailsys)(?:/(?:smtps|submission))?/([^\[:]*).*?: ([^:\s]+)")
PFLOG_DELIVERY = re.compile(
    r"to=<([^>]*)>, (?:orig_to=<[^>]*>, )?relay=([^,]+), (?:conn_use=[^,]+, )?delay=([^,]+), "
    r"(?:delays=[^,]+, )?(?:dsn=[^,]+, )?status=(\S+)(.*)$")


def pflogsumm(log: str, qid: str) -> list[tuple[str, str, str, str]]:
    """(program, to, relay, status) of each delivery line of qid, as pflogsumm parses it."""
    out = []
    for line in log.splitlines():
        m = PFLOG_LINE.match(line)
        tag = m and PFLOG_TAG.match(m.group(6))
        if tag and tag.group(2) == qid and (d := PFLOG_DELIVERY.search(line)):
            out.append((tag.group(1), d.group(1), d.group(2), d.group(4)))
    return out


REMOTE = {"remote.test": {"MX": [(10, "mx.remote.test")]}, "mx.remote.test": {"A": ["127.0.0.1"]}}


def transport(tmp_path, **hops: int) -> dict[str, str]:
    """transport_maps sending each domain (dots as _) to its port: "smtp:domain:port"."""
    path = tmp_path / "transport"
    path.write_text("".join(f"{d.replace('_', '.')} smtp:{d.replace('_', '.')}:{p}\n"
                            for d, p in hops.items()))
    return {"transport_maps": f"texthash:{path}"}


def start(inst, tmp_path, dns, main_cf=None, master_cf=()):
    (tmp_path / "vmailbox").write_text("alice@example.com example.com/alice/\n"
                                       "bob@example.com example.com/bob/\n"
                                       "pm@example.com example.com/pm/\n")
    params = {"dns_nameservers": dns.spec, "service_throttle_time": "1s",
              "virtual_mailbox_domains": "example.com",
              "virtual_mailbox_base": str(tmp_path / "vmail"),
              "virtual_mailbox_maps": f"texthash:{tmp_path}/vmailbox",
              "minimal_backoff_time": "1s", "maximal_backoff_time": "2s",
              "queue_run_delay": "1s"}
    params.update(main_cf or {})
    inst.write_config(master_cf=[*SERVICES, *master_cf], main_cf=params)
    inst.start()


def inject(inst, *rcpts: str, sender: str = "alice@example.com", content: bytes = CONTENT,
           notify: tuple = ()) -> str:
    return qh.inject(inst, content, *rcpts, sender=sender, notify=notify)


def maildir(tmp_path, user: str) -> list[bytes]:
    new = tmp_path / "vmail" / "example.com" / user / "new"
    return [(new / n).read_bytes() for n in sorted(os.listdir(new))] if new.is_dir() else []


def notice_of(inst, log: str, qid: str) -> str:
    """The queue ID of the sender notice bounce logged for qid, once it is delivered."""
    line = next(x for x in log.splitlines() if f"{qid}: sender non-delivery notification:" in x)
    notice = line.rsplit(" ", 1)[1]
    inst.wait_log(f"{notice}: removed", timeout=20)
    return notice


def report(data: bytes) -> str:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report"
    return data.decode()


def test_relayhost_in_brackets_with_a_port_skips_the_mx_lookup(mailsys_instance, tmp_path):
    inst = mailsys_instance
    sink = h.smtpsink.SmtpSink()
    # remote.test's own MX is a host nobody listens on: only the relayhost works.
    zone = {"remote.test": {"MX": [(10, "mx.remote.test")]}, "mx.remote.test": {"A": ["127.0.0.9"]},
            "relay.test": {"A": ["127.0.0.1"]}}
    with h.dnsserver.DnsServer(zone) as dns, h.SinkThread(sink) as port:
        start(inst, tmp_path, dns, {"relayhost": f"[relay.test]:{port}"})
        qid = inject(inst, "bob@remote.test", "bob@example.com")
        log = inst.wait_log(f"{qid}: removed", timeout=20)
        queries = list(dns.queries)
    assert [m.rcpts for m in sink.messages] == [["bob@remote.test"]]
    assert len(maildir(tmp_path, "bob")) == 1          # local mail does not go to the relayhost
    assert sorted(pflogsumm(log, qid)) == [
        ("smtp", "bob@remote.test", f"relay.test[127.0.0.1]:{port}", "sent"),
        ("virtual", "bob@example.com", "virtual", "sent")]
    assert all(t != "MX" for _, t in queries), queries
    assert ("relay.test", "A") in queries and not any(n == "remote.test" for n, _ in queries)


def test_dns_verdicts_and_a_loop_back_to_our_own_smtpd(mailsys_instance, tmp_path):
    inst = mailsys_instance
    port = inst.free_port()
    zone = {"gone.test": h.dnsserver.NXDOMAIN, "nullmx.test": {"MX": [(0, ".")]},
            "broken.test": h.dnsserver.SERVFAIL,
            "loop.test": {"MX": [(10, "mx.loop.test")]}, "mx.loop.test": {"A": ["127.0.0.1"]}}
    with h.dnsserver.DnsServer(zone) as dns:
        start(inst, tmp_path, dns,
              {**transport(tmp_path, loop_test=port), "smtpd_error_sleep_time": "0"},
              ["cleanup unix n - n - 0 cleanup", "anvil unix - - n - 1 anvil",
               f"127.0.0.1:{port} inet n - n - - smtpd"])
        qid = inject(inst, "x@gone.test", "y@nullmx.test", "z@loop.test")
        later = inject(inst, "w@broken.test")
        log = inst.wait_log(f"{qid}: removed", timeout=20)
        notice_of(inst, log, qid)
        log = inst.wait_log(f"{later}: to=<w@broken.test>", timeout=20)
    # A name server failure is worth another try: the entry stays, deferred.
    assert re.search(rf"{later}: to=<w@broken\.test>, relay=none, .*dsn=4\.4\.3, status=deferred "
                     rf"\(Host or domain name not found\. Name service error for name=broken\.test "
                     rf"type=MX: Host not found, try again\)", log), log
    assert qh.entry(inst, later)[0] is not None
    assert sorted(pflogsumm(log, qid)) == [
        ("smtp", "x@gone.test", "none", "bounced"), ("smtp", "y@nullmx.test", "none", "bounced"),
        ("smtp", "z@loop.test", "none", "bounced")]
    assert re.search(rf"{qid}: to=<x@gone\.test>, relay=none, .*dsn=5\.1\.2, status=bounced "
                     rf"\(Host or domain name not found\. Name service error for name=gone\.test "
                     rf"type=MX: Host not found\)", log), log
    # Postfix 3.7: "dsn=5.1.0, status=bounced (Domain nullmx.test does not
    # accept mail (nullMX))" (smtp_addr.c), not RFC 7505's 5.1.10.
    assert re.search(rf"{qid}: to=<y@nullmx\.test>, relay=none, .*dsn=5\.1\.0, "
                     rf"status=bounced \(Domain nullmx\.test does not accept mail \(nullMX\)\)",
                     log), log
    assert re.search(rf"{qid}: to=<z@loop\.test>, relay=none, .*dsn=5\.4\.6, status=bounced "
                     rf"\(mail for loop\.test loops back to myself\)", log), log
    assert f"connect from" not in log            # the loop was seen before connecting
    [data] = maildir(tmp_path, "alice")
    text = report(data)
    for rcpt, status in (("x@gone.test", "5.1.2"), ("y@nullmx.test", "5.1.0"),
                         ("z@loop.test", "5.4.6")):
        assert f"Final-Recipient: rfc822; {rcpt}\nAction: failed\nStatus: {status}\n" in text


def test_zero_lifetimes_try_once_then_return_the_mail(mailsys_instance, tmp_path):
    inst = mailsys_instance
    sink = h.smtpsink.SmtpSink(rcpt={"later@remote.test": "450 4.2.1 <later@remote.test>: busy"})
    with h.dnsserver.DnsServer(REMOTE) as dns, h.SinkThread(sink) as port:
        start(inst, tmp_path, dns, {**transport(tmp_path, remote_test=port),
                                    "maximal_queue_lifetime": "0", "bounce_queue_lifetime": "0"})
        qid = inject(inst, "later@remote.test")
        nul = inject(inst, "later@remote.test", sender="")
        log = inst.wait_log(f"{qid}: removed", timeout=20)
        log = inst.wait_log(f"{nul}: removed", timeout=20)
        notice_of(inst, log, qid)
    for q, sender in ((qid, "alice@example.com"), (nul, "")):
        assert pflogsumm(log, q) == [("smtp", "later@remote.test",
                                      f"mx.remote.test[127.0.0.1]:{port}", "deferred")]
        assert f"{q}: from=<{sender}>, status=expired, returned to sender" in log
    assert f"{nul}: sender non-delivery notification: " not in log
    assert len(sink.commands) and sum(c.upper().startswith("RCPT") for c in sink.commands) == 2
    [data] = maildir(tmp_path, "alice")
    text = report(data)
    assert "Status: 4.2.1\n" in text and "Action: failed\n" in text
    assert "Remote-MTA: dns; mx.remote.test" in text
    assert "Diagnostic-Code: smtp; 450 4.2.1 <later@remote.test>: busy" in text


def test_a_maildir_loop_is_bounced_to_the_sender_and_copied_to_postmaster(mailsys_instance,
                                                                           tmp_path):
    inst = mailsys_instance
    with h.dnsserver.DnsServer({}) as dns:
        start(inst, tmp_path, dns, {"notify_classes": "bounce, resource, software",
                                    "bounce_notice_recipient": "pm@example.com"})
        qid = inject(inst, "bob@example.com",
                     content=b"Delivered-To: Bob@example.com\r\n" + CONTENT)
        log = inst.wait_log(f"{qid}: removed", timeout=20)
        notice_of(inst, log, qid)
        line = next(x for x in log.splitlines()
                    if f"{qid}: postmaster non-delivery notification: " in x)
        log = inst.wait_log(f"{line.rsplit(' ', 1)[1]}: removed", timeout=20)
    assert maildir(tmp_path, "bob") == []
    assert re.search(rf"{qid}: to=<bob@example\.com>, relay=virtual, .*dsn=5\.4\.6, "
                     rf"status=bounced \(mail forwarding loop for bob@example\.com\)", log), log
    [data] = maildir(tmp_path, "alice")
    assert "Status: 5.4.6" in report(data)
    [copy] = maildir(tmp_path, "pm")
    assert copy.startswith(b"Return-Path: <double-bounce@mx.example.test>\n")
    assert "Subject: Postmaster Copy: Undelivered Mail\n" in report(copy)


def test_a_postmaster_copy_names_the_configured_recipient_as_orig_to(mailsys_instance,
                                                                      tmp_path):
    # Postfix 3.7.11, notify_classes = bounce, resource, software, the copy
    # to the default bounce_notice_recipient: "smtp[19566]: A414A224191:
    # to=<postmaster@bench.localdomain>, orig_to=<postmaster>, relay=...";
    # cleanup qualifies it with @$myorigin and keeps what was configured.
    inst = mailsys_instance
    with h.dnsserver.DnsServer({}) as dns:
        start(inst, tmp_path, dns, {"notify_classes": "bounce", "myorigin": "example.com",
                                    "bounce_notice_recipient": "pm"})
        qid = inject(inst, "bob@example.com",
                     content=b"Delivered-To: Bob@example.com\r\n" + CONTENT)
        log = inst.wait_log(f"{qid}: removed", timeout=20)
        line = next(x for x in log.splitlines()
                    if f"{qid}: postmaster non-delivery notification: " in x)
        copy = line.rsplit(" ", 1)[1]
        log = inst.wait_log(f"{copy}: removed", timeout=20)
    assert re.search(rf"{copy}: to=<pm@example\.com>, orig_to=<pm>, relay=virtual, "
                     r".*status=sent", log), log
    assert len(maildir(tmp_path, "pm")) == 1


def test_a_success_report_on_null_sender_mail_goes_to_2bounce(mailsys_instance, tmp_path):
    # Postfix 3.7.11 (bounce_trace_service.c), notify_classes = 2bounce:
    # "bounce[9134]: E8797226063: sender delivery status notification:
    # EB55B226076", from=<double-bounce@...> to 2bounce_notice_recipient.
    inst = mailsys_instance
    with h.dnsserver.DnsServer({}) as dns:
        start(inst, tmp_path, dns, {"notify_classes": "2bounce",
                                    "2bounce_notice_recipient": "pm@example.com"})
        qid = inject(inst, "bob@example.com", sender="", notify=(Notify.SUCCESS,))
        log = inst.wait_log(f"{qid}: removed", timeout=20)
        line = next(x for x in log.splitlines()
                    if f"{qid}: sender delivery status notification: " in x)
        log = inst.wait_log(f"{line.rsplit(' ', 1)[1]}: removed", timeout=20)
    assert "not sending trace/success notification" not in log
    assert len(maildir(tmp_path, "bob")) == 1
    [data] = maildir(tmp_path, "pm")
    assert data.startswith(b"Return-Path: <double-bounce@mx.example.test>\n")
    text = report(data)
    assert "Subject: Successful Mail Delivery Report\n" in text
    assert "Final-Recipient: rfc822; bob@example.com" in text


class TimedSink(h.smtpsink.SmtpSink):
    """A sink that notes when each message's end of data arrived."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.times: list[float] = []

    async def _point(self, name: str) -> None:
        if name == "DOT":
            self.times.append(time.monotonic())
        await super()._point(name)


def test_destination_rate_delay_spaces_the_deliveries(mailsys_instance, tmp_path):
    inst = mailsys_instance
    sink = TimedSink()
    with h.dnsserver.DnsServer(REMOTE) as dns, h.SinkThread(sink) as port:
        start(inst, tmp_path, dns, {**transport(tmp_path, remote_test=port),
                                    "default_destination_rate_delay": "1s"})
        qids = [inject(inst, f"u{i}@remote.test") for i in range(3)]
        for qid in qids:
            inst.wait_log(f"{qid}: removed", timeout=20)
    assert len(sink.times) == 3
    gaps = [b - a for a, b in zip(sink.times, sink.times[1:])]
    assert all(g >= 0.9 for g in gaps), gaps


class HoldingSink(h.smtpsink.SmtpSink):
    """A sink that holds every end of data unanswered while ``hold`` is set."""

    hold: bool = True

    async def _point(self, name: str) -> None:
        while name == "DOT" and self.hold:
            await trio.sleep(0.05)
        await super()._point(name)


def test_a_stalled_destination_does_not_hold_up_the_others(mailsys_instance, tmp_path):
    inst = mailsys_instance
    slow, fast = HoldingSink(), h.smtpsink.SmtpSink()
    zone = {"slow.test": {"MX": [(10, "mx.slow.test")]}, "mx.slow.test": {"A": ["127.0.0.1"]},
            "fast.test": {"MX": [(10, "mx.fast.test")]}, "mx.fast.test": {"A": ["127.0.0.1"]}}
    with h.dnsserver.DnsServer(zone) as dns, h.SinkThread(slow) as sp, h.SinkThread(fast) as fp:
        start(inst, tmp_path, dns, {**transport(tmp_path, slow_test=sp, fast_test=fp),
                                    "smtp_destination_concurrency_limit": "2",
                                    "smtp_data_done_timeout": "600s"})
        stuck = [inject(inst, f"s{i}@slow.test") for i in range(6)]
        inst.wait_until(lambda: sum(c.upper() == "DATA" for c in slow.commands) >= 2, timeout=20)
        moving = [inject(inst, f"f{i}@fast.test") for i in range(6)]
        for qid in moving:
            inst.wait_log(f"{qid}: removed", timeout=20)
        log = inst.log_text()
        # The slow destination holds its two deliveries and no more; none is done.
        assert sum(c.upper() == "DATA" for c in slow.commands) == 2
        assert not any(f"{qid}: removed" in log for qid in stuck)
        slow.hold = False
        for qid in stuck:
            inst.wait_log(f"{qid}: removed", timeout=20)
    assert len(fast.messages) == 6
    assert sorted(r for m in slow.messages for r in m.rcpts) == [f"s{i}@slow.test" for i in range(6)]


def test_flush_one_site_then_one_queue_id(mailsys_instance, tmp_path):
    inst = mailsys_instance
    later = "450 4.2.1 try later"
    sink = h.smtpsink.SmtpSink(rcpt={"a@a.test": later, "b@b.test": later})
    zone = {"a.test": {"MX": [(10, "mx.a.test")]}, "b.test": {"MX": [(10, "mx.a.test")]},
            "mx.a.test": {"A": ["127.0.0.1"]}}
    with h.dnsserver.DnsServer(zone) as dns, h.SinkThread(sink) as port:
        start(inst, tmp_path, dns, {**transport(tmp_path, a_test=port, b_test=port),
                                    "minimal_backoff_time": "300s", "maximal_backoff_time": "300s",
                                    "queue_run_delay": "300s", "fast_flush_domains": "a.test"})
        qa, qb = inject(inst, "a@a.test"), inject(inst, "b@b.test")
        for q in (qa, qb):
            inst.wait_log(f"{q}: to=<", timeout=20)
        sink.rcpt.clear()
        assert inst.cli("postqueue", "-s", "a.test").returncode == 0
        inst.wait_log(f"{qa}: removed", timeout=20)
        time.sleep(0.5)
        assert f"{qb}: removed" not in inst.log_text()
        assert qh.entry(inst, qb)[1] is not None           # still queued, waiting
        assert inst.cli("postqueue", "-i", qb).returncode == 0
        inst.wait_log(f"{qb}: removed", timeout=20)
    assert sorted(m.rcpts[0] for m in sink.messages) == ["a@a.test", "b@b.test"]


def test_tls_verified_by_the_smtp_agent_under_the_master(mailsys_instance, tmp_path):
    import trustme

    from mailsys.config import load
    from mailsys.tls import server_context
    inst = mailsys_instance
    ca = trustme.CA()
    ca.issue_cert("mx.remote.test").private_key_and_cert_chain_pem.write_to_path(
        str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    (tmp_path / "sink-etc").mkdir()
    (tmp_path / "sink-etc" / "main.cf").write_text(f"smtpd_tls_cert_file = {tmp_path}/server.pem\n")
    sink = h.smtpsink.SmtpSink(tls=server_context(load(tmp_path / "sink-etc")))
    with h.dnsserver.DnsServer(REMOTE) as dns, h.SinkThread(sink) as port:
        start(inst, tmp_path, dns, {**transport(tmp_path, remote_test=port),
                                    "smtp_tls_security_level": "verify",
                                    "smtp_tls_CAfile": str(tmp_path / "ca.pem"),
                                    "smtp_tls_loglevel": "1"})
        qid = inject(inst, "bob@remote.test")
        log = inst.wait_log(f"{qid}: removed", timeout=20)
    assert sink.tls_sessions == 1 and [m.rcpts for m in sink.messages] == [["bob@remote.test"]]
    assert f"Verified TLS connection established to mx.remote.test[127.0.0.1]:{port}" in log
    assert pflogsumm(log, qid) == [("smtp", "bob@remote.test",
                                    f"mx.remote.test[127.0.0.1]:{port}", "sent")]


def test_a_delay_warning_reaches_the_sender_while_the_mail_is_retried(mailsys_instance, tmp_path):
    inst = mailsys_instance
    sink = h.smtpsink.SmtpSink(rcpt={"slow@remote.test": "450 4.2.1 <slow@remote.test>: busy"})
    with h.dnsserver.DnsServer(REMOTE) as dns, h.SinkThread(sink) as port:
        start(inst, tmp_path, dns, {**transport(tmp_path, remote_test=port),
                                    "delay_warning_time": "1s"})
        qid = inject(inst, "slow@remote.test")
        log = inst.wait_log(f"{qid}: sender delay notification: ", timeout=20)
        notice = next(x for x in log.splitlines()
                      if f"{qid}: sender delay notification: " in x).rsplit(" ", 1)[1]
        inst.wait_log(f"{notice}: removed", timeout=20)
        sink.rcpt.clear()
        log = inst.wait_log(f"{qid}: removed", timeout=20)
    assert log.count(f"{qid}: sender delay notification: ") == 1
    [data] = maildir(tmp_path, "alice")
    text = report(data)
    assert "Subject: Delayed Mail (still being retried)\n" in text
    assert "Action: delayed\nStatus: 4.2.1\n" in text
    assert [m.rcpts for m in sink.messages] == [["slow@remote.test"]]


class DropOnceSink(h.smtpsink.SmtpSink):
    """A sink that hangs up once, after the message content but before its reply."""

    dropped: int = 0

    async def _point(self, name: str) -> None:
        if name == "DOT" and not self.dropped:
            self.dropped += 1
            raise h.smtpsink._Closed
        await super()._point(name)


def test_a_peer_that_drops_during_data_gets_the_mail_once_on_the_retry(mailsys_instance,
                                                                     tmp_path):
    inst = mailsys_instance
    sink = DropOnceSink()
    with h.dnsserver.DnsServer(REMOTE) as dns, h.SinkThread(sink) as port:
        start(inst, tmp_path, dns, {**transport(tmp_path, remote_test=port),
                                    "smtp_destination_recipient_limit": "2"})
        qid = inject(inst, *(f"r{i}@remote.test" for i in range(5)))
        log = inst.wait_log(f"{qid}: removed", timeout=20)
    assert sink.dropped == 1
    assert "while sending end of data -- message may be sent more than once" in log
    # Recipients go two by two (smtp_destination_recipient_limit), each one once.
    assert sorted(len(m.rcpts) for m in sink.messages) == [1, 2, 2]
    assert sorted(r for m in sink.messages for r in m.rcpts) == [f"r{i}@remote.test"
                                                                 for i in range(5)]
    statuses = [s for _, to, _, s in pflogsumm(log, qid)]
    assert statuses.count("sent") == 5 and set(statuses) <= {"sent", "deferred"}


def beyond_socket_buffers() -> int:
    """A content size no loopback connection can hold in its buffers.

    A message the kernel takes whole is written before the stalled peer
    hangs up, and the agent then loses the connection waiting for the reply
    to the dot ("while sending end of data"), not inside the body. What it
    takes is the peer's receive window plus what the agent may leave unsent:
    trio's sockets keep that to 16 KB (TCP_NOTSENT_LOWAT), but a send buffer
    can grow to tcp_wmem's maximum (4 MB by default), so the body is larger
    than that, by one MB for the window of a peer that read only 50 KB."""
    try:
        wmem_max = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        wmem_max = 4 << 20
    return wmem_max + (1 << 20)


def test_a_peer_that_hangs_up_inside_the_body_gets_one_whole_copy_on_the_retry(mailsys_instance,
                                                                               tmp_path):
    inst = mailsys_instance
    # Numbered lines, every 50th one dot-stuffed on the wire: a lost, doubled
    # or reordered piece shows in the byte-for-byte comparison below.
    lines = [b"%s%07d %s" % (b"." if i % 50 == 0 else b"", i, b"x" * 70)
             for i in range(beyond_socket_buffers() // 80)]
    content = CONTENT.replace(b"Hello.\r\n", b"\r\n".join(lines) + b"\r\n")
    sink = h.smtpsink.SmtpSink(drop_body=[50_000])
    with h.dnsserver.DnsServer(REMOTE) as dns, h.SinkThread(sink) as port:
        start(inst, tmp_path, dns, transport(tmp_path, remote_test=port))
        qid = inject(inst, "bob@remote.test", content=content)
        log = inst.wait_log(f"{qid}: removed", timeout=40)
    assert sink.cut == [50_000] and sink.sessions == 2
    [msg] = sink.messages
    assert (msg.sender, msg.rcpts) == ("alice@example.com", ["bob@remote.test"])
    assert msg.data == content
    relay = f"mx.remote.test[127.0.0.1]:{port}"
    deferred = re.search(
        rf"{qid}: to=<bob@remote\.test>, relay={re.escape(relay)}, delay=([\d.]+), "
        rf"delays=[\d./]+, dsn=4\.4\.2, status=deferred \(lost connection with "
        rf"mx\.remote\.test\[127\.0\.0\.1\] while sending message body\)$", log, re.M)
    assert deferred, log
    assert pflogsumm(log, qid) == [("smtp", "bob@remote.test", relay, "deferred"),
                                   ("smtp", "bob@remote.test", relay, "sent")]
    # The retry waited out minimal_backoff_time (1s) after the deferral; delay=
    # keeps two significant digits, cut off, so the sent line may show 0.1 less.
    sent = re.search(rf"{qid}: to=<bob@remote\.test>, .*delay=([\d.]+), .*status=sent", log)
    assert float(sent.group(1)) - float(deferred.group(1)) >= 0.9, log
