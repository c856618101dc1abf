"""The bounce service's notice: which recipients, which headers, null sender."""

from __future__ import annotations

import email
import email.policy

import pytest
import structlog
import trio

from mailsys.config import load
from mailsys.ipc.messages import ErrorReply
from mailsys.ipc.proto.bounce import NoticeReady, NoticeRequest
from mailsys.message.dsn import Kind
from mailsys.message.envelope import Envelope, Notify, RcptState, Recipient
from mailsys.message.qid import is_qid
from mailsys.qmgr.backoff import delay_warning_due
from mailsys.qmgr.settings import QmgrSettings
from mailsys.queue import QueueStore
from services.bounce import Bounce, compose

T0 = 1_800_000_000.0
CONTENT = b"From: alice@example.com\r\nSubject: hi\r\nMessage-Id: <m1@example.com>\r\n\r\nhello\r\n"


@pytest.fixture
def cfg(tmp_path):
    (tmp_path / "main.cf").write_text("myhostname = mx.example.test\nmyorigin = example.test\n"
                                      f"queue_directory = {tmp_path}/q\n")
    return load(tmp_path)


def bounced(address: str, **kw) -> Recipient:
    return Recipient(address, state=RcptState.BOUNCED, dsn_status="5.1.1",
                     reason="host mx[192.0.2.1] said: 550 5.1.1 unknown user", **kw)


def env(*rcpts: Recipient, sender="alice@example.com") -> Envelope:
    return Envelope("4jbDmW4NhRzJDXR", sender, rcpts, arrival_time=T0, size=len(CONTENT))


def test_failure_notice_has_the_headers_cleanup_adds(cfg):
    e = env(bounced("bob@remote.example"), Recipient("carol@remote.example", state=RcptState.SENT))
    notice = compose(Kind.FAILURE, e, CONTENT, (0,), cfg, T0 + 60)
    assert is_qid(notice.queue_id) and notice.recipient == "alice@example.com"
    raw = notice.content
    assert raw.startswith(b"Received: by mx.example.test (mailsys)\r\n\tid "
                          + notice.queue_id.encode() + b"; ")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Message-Id"] and notice.queue_id in msg["Message-Id"]
    assert msg["From"] == "Mail Delivery System <MAILER-DAEMON@example.test>"
    assert msg.get_content_type() == "multipart/report"
    text = raw.decode()
    assert "Final-Recipient: rfc822; bob@remote.example" in text
    assert "carol@remote.example" not in text.split("Undelivered Message")[0]
    assert [line for line in notice.log_lines if line.startswith("message-id=<")]
    assert b"\n" not in raw.replace(b"\r\n", b"")        # CRLF throughout
    assert b"In-Reply-To" not in raw and b"References" not in raw    # not threaded


def test_threaded_bounces_refer_to_the_original(tmp_path):
    # bounce_notify_util.c bounce_header(): with enable_threaded_bounces,
    # "References:" and "In-Reply-To:" with the original's Message-ID after
    # "To:"; a malformed one is "warning: QID: ignoring malformed Message-ID".
    (tmp_path / "main.cf").write_text("myhostname = mx.example.test\nmyorigin = example.test\n"
                                      "enable_threaded_bounces = yes\n")
    cfg = load(tmp_path)
    e = env(bounced("bob@remote.example"))
    head = compose(Kind.FAILURE, e, CONTENT, (0,), cfg, T0).content.split(b"\r\n\r\n")[0]
    assert b"\r\nTo: alice@example.com\r\nReferences: <m1@example.com>\r\n" \
           b"In-Reply-To: <m1@example.com>\r\nAuto-Submitted: auto-replied\r\n" in head
    with structlog.testing.capture_logs() as logs:
        bad = compose(Kind.FAILURE, e, b"Message-Id: m1@example.com\r\n\r\nx\r\n", (0,), cfg, T0)
    assert b"In-Reply-To" not in bad.content
    assert logs == [dict(event="ignoring malformed Message-ID", queue_id=e.queue_id,
                         log_level="warning")]


def test_no_notice_for_the_null_sender(cfg):
    assert compose(Kind.FAILURE, env(bounced("bob@remote.example"), sender=""), CONTENT,
                   (0,), cfg, T0) is None


def test_no_notice_when_no_recipient_wants_it(cfg):
    e = env(bounced("bob@remote.example", notify=(Notify.NEVER,)),
            bounced("dave@remote.example", notify=(Notify.SUCCESS,)))
    assert compose(Kind.FAILURE, e, CONTENT, (0, 1), cfg, T0) is None
    assert compose(Kind.SUCCESS, e, CONTENT, (1,), cfg, T0) is not None


def test_delay_notice_subject(cfg):
    e = env(Recipient("bob@remote.example", state=RcptState.DEFERRED, dsn_status="4.4.1",
                      reason="connect to mx: Connection refused"))
    notice = compose(Kind.DELAY, e, CONTENT, (0,), cfg, T0 + 7200)
    msg = email.message_from_bytes(notice.content, policy=email.policy.default)
    assert msg["Subject"] == "Delayed Mail (still being retried)"


def test_service_answers_from_the_store_and_logs(cfg):
    store = QueueStore.open(cfg.path("queue_directory"))
    try:
        qid = store.create(env(bounced("bob@remote.example")).replace(queue_id=""), CONTENT)
        nul = store.create(env(bounced("bob@remote.example"), sender="").replace(queue_id=""),
                           CONTENT)
        service = Bounce(cfg, store)

        async def ask():
            return [await service.answer(NoticeRequest(qid, "failure", (0,))),
                    await service.answer(NoticeRequest(nul, "failure", (0,))),
                    await service.answer(NoticeRequest("4jbDmW4XjyzJDYk", "failure", (0,))),
                    await service.answer(NoticeRequest(qid, "bogus", (0,)))]
        with structlog.testing.capture_logs() as logs:
            ready, none, missing, bogus = trio.run(ask)
    finally:
        store.close()
    assert isinstance(ready, NoticeReady) and ready.notice_id and ready.sender == ""
    assert ready.recipient == "alice@example.com" and b"multipart/report" in ready.content
    assert none == NoticeReady(notice_id="", sender="", recipient="", content=b"")
    assert isinstance(missing, ErrorReply) and isinstance(bogus, ErrorReply)
    notes = [e for e in logs if e["event"] == "notification"]
    assert notes == [dict(event="notification", queue_id=qid, kind="sender non-delivery",
                          notice_id=ready.notice_id, log_level="info")]
    assert any(e.get("queue_id") == nul and "discarded" in e["event"] for e in logs)


def classes_cfg(tmp_path, classes: str):
    etc = tmp_path / "etc-classes"
    etc.mkdir()
    (etc / "main.cf").write_text("myhostname = mx.example.test\nmyorigin = example.test\n"
                                 f"queue_directory = {tmp_path}/q\nnotify_classes = {classes}\n"
                                 "bounce_notice_recipient = bounces\n"
                                 "2bounce_notice_recipient = doubles@admin.test\n")
    return load(etc)


def ask(cfg, *envelopes_and_requests):
    """The service's answers to (envelope, kind, indexes) requests, and the log."""
    store = QueueStore.open(cfg.path("queue_directory"))
    try:
        service = Bounce(cfg, store)
        reqs = [NoticeRequest(store.create(e.replace(queue_id=""), CONTENT), kind, idx)
                for e, kind, idx in envelopes_and_requests]

        async def main():
            return [await service.answer(r) for r in reqs]
        with structlog.testing.capture_logs() as logs:
            return [r.queue_id for r in reqs], trio.run(main), logs
    finally:
        store.close()


def test_postmaster_copy_of_a_bounce_only_with_the_bounce_class(tmp_path, cfg):
    e = env(bounced("bob@remote.example", notify=(Notify.NEVER,)),
            bounced("dave@remote.example"))
    _, [plain], _ = ask(cfg, (e, "failure", (0, 1)))
    assert plain.notice_id and plain.copies == ()

    [qid], [ready], logs = ask(classes_cfg(tmp_path, "bounce, resource"), (e, "failure", (0, 1)))
    assert ready.notice_id and "bob@remote.example" not in ready.content.decode().split(
        "Undelivered Message")[0]
    [copy] = ready.copies
    assert (copy.sender, copy.recipient) == ("double-bounce@example.test", "bounces@example.test")
    assert is_qid(copy.notice_id) and copy.notice_id != ready.notice_id
    msg = email.message_from_bytes(copy.content, policy=email.policy.default)
    assert msg["Subject"] == "Postmaster Copy: Undelivered Mail"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["To"] == "bounces@example.test"
    text = copy.content.decode()
    # Every bounced recipient, whatever its NOTIFY; the original's headers only.
    assert "Final-Recipient: rfc822; bob@remote.example" in text
    assert "Final-Recipient: rfc822; dave@remote.example" in text
    assert "Content-Type: text/rfc822-headers" in text and "hello" not in text
    # bounce_notify_service.c: the sender's notice first, then the copy,
    # each after its message-id line.
    notes = [(x["event"], x.get("kind"), x["queue_id"]) for x in logs]
    assert notes == [("message-id", None, ready.notice_id),
                     ("notification", "sender non-delivery", qid),
                     ("message-id", None, copy.notice_id),
                     ("notification", "postmaster non-delivery", qid)]
    assert [x["notice_id"] for x in logs if x["event"] == "notification"] == [
        ready.notice_id, copy.notice_id]


def test_a_bounce_of_null_sender_mail_goes_to_2bounce_with_the_whole_message(tmp_path):
    cfg = classes_cfg(tmp_path, "2bounce")
    [qid], [ready], logs = ask(cfg, (env(bounced("bob@remote.example"), sender=""),
                                     "failure", (0,)))
    assert ready.notice_id == ""
    [copy] = ready.copies
    assert copy.recipient == "doubles@admin.test"
    text = copy.content.decode()
    assert "Content-Type: message/rfc822" in text and "hello" in text
    assert not any("discarded" in x["event"] for x in logs)


def test_the_bounce_class_implies_2bounce(tmp_path):
    # postconf(5): "bounce (also implies 2bounce)"; bounce_notify_service.c
    # sends the double bounce when either class is on.
    cfg = classes_cfg(tmp_path, "bounce")
    [qid], [ready], logs = ask(cfg, (env(bounced("bob@remote.example"), sender=""),
                                     "failure", (0,)))
    [copy] = ready.copies
    assert (copy.sender, copy.recipient) == ("double-bounce@example.test", "doubles@admin.test")
    assert ("postmaster non-delivery", copy.notice_id) in [
        (x["kind"], x["notice_id"]) for x in logs if x["event"] == "notification"]


def test_double_bounce_sender_mail_is_never_reported(tmp_path):
    cfg = classes_cfg(tmp_path, "bounce, 2bounce")
    e = env(bounced("postmaster@example.test"), sender="double-bounce@example.test")
    [qid], [ready], logs = ask(cfg, (e, "failure", (0,)))
    assert ready.notice_id == "" and ready.copies == ()
    assert dict(event="undeliverable postmaster notification discarded", queue_id=qid,
                log_level="warning") in logs


def test_a_success_notice_on_null_sender_mail_goes_to_2bounce(tmp_path):
    # bounce_trace_service.c: with 2bounce, the notice the sender would get
    # goes to 2bounce_notice_recipient from the double-bounce sender, logged
    # as a sender's (seen live with Postfix 3.7.11).
    cfg = classes_cfg(tmp_path, "2bounce")
    e = env(Recipient("bob@remote.example", state=RcptState.SENT, dsn_status="2.0.0",
                      reason="delivered to mailbox", notify=(Notify.SUCCESS,)),
            Recipient("carol@remote.example", state=RcptState.SENT, dsn_status="2.0.0",
                      reason="delivered to mailbox"), sender="")
    [qid], [ready], logs = ask(cfg, (e, "success", (0, 1)))
    assert ready.notice_id == ""
    [copy] = ready.copies
    assert (copy.sender, copy.recipient) == ("double-bounce@example.test", "doubles@admin.test")
    msg = email.message_from_bytes(copy.content, policy=email.policy.default)
    assert msg["Subject"] == "Successful Mail Delivery Report"
    assert msg["To"] == "doubles@admin.test" and msg["Auto-Submitted"] == "auto-replied"
    text = copy.content.decode()
    assert "Your message was successfully delivered" in text
    assert "Final-Recipient: rfc822; bob@remote.example" in text
    assert "carol@remote.example" not in text            # no NOTIFY=SUCCESS
    assert [(x["event"], x.get("kind"), x["queue_id"]) for x in logs] == [
        ("message-id", None, copy.notice_id),
        ("notification", "sender delivery status", qid)]


def test_no_delay_notice_is_asked_for_null_sender_mail(tmp_path):
    # cleanup_envelope.c writes no delay warning time for mail from <>, so
    # Postfix sends it no delay notice, not even with the delay class
    # (seen live with Postfix 3.7.11).
    s = QmgrSettings(delay_warning_time=1)
    deferred = Recipient("bob@remote.example", state=RcptState.DEFERRED)
    assert delay_warning_due(env(deferred), T0 + 60, s)
    assert not delay_warning_due(env(deferred, sender=""), T0 + 60, s)


@pytest.mark.parametrize("sender, line", [
    ("", "not sending trace/success notification for single-bounce message"),
    ("double-bounce@example.test",
     "not sending trace/success notification for double-bounce message"),
])
def test_no_success_notice_for_bounces_as_bounce_trace_service_says(cfg, sender, line):
    # Postfix's bounce_trace_service.c: an info line, not the warning
    # about a discarded postmaster notification.
    e = env(Recipient("bob@remote.example", state=RcptState.SENT, dsn_status="2.0.0",
                      reason="delivered to mailbox", notify=(Notify.SUCCESS,)), sender=sender)
    [qid], [ready], logs = ask(cfg, (e, "success", (0,)))
    assert ready.notice_id == "" and ready.copies == ()
    assert logs == [dict(event=line, queue_id=qid, log_level="info")]


def test_delay_copy_with_the_delay_class(tmp_path):
    cfg = classes_cfg(tmp_path, "delay")
    e = env(Recipient("bob@remote.example", state=RcptState.DEFERRED, dsn_status="4.4.1",
                      reason="connect to mx: Connection refused"))
    _, [ready], logs = ask(cfg, (e, "delay", (0,)))
    [copy] = ready.copies
    assert copy.recipient == "postmaster@example.test"
    msg = email.message_from_bytes(copy.content, policy=email.policy.default)
    assert msg["Subject"] == "Postmaster Warning: Delayed Mail"
    assert ("postmaster delay", copy.notice_id) in [
        (x["kind"], x["notice_id"]) for x in logs if x["event"] == "notification"]
