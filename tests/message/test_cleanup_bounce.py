"""cleanup_bounce: a returned message's recipients, as Postfix's cleanup_bounce() logs them."""

from mailsys.message.cleanup_bounce import bounceable, returned
from mailsys.message.envelope import Envelope, RcptState, Recipient
from mailsys.message.headers import TOO_MANY_HOPS
from mailsys.message.reply import StatusReply

ENV = Envelope(queue_id="Q", sender="a@x.test", recipients=(Recipient("b@y.test"),), ret="FULL")
CONTENT = b"Subject: s\nTo: b@y.test\n\nbody\n"


def test_only_permanent_refusals_go_back():
    assert bounceable(StatusReply(550, "5.7.1", "message content rejected"))
    assert not bounceable(StatusReply(450, "4.7.1", "try later"))
    assert not bounceable(StatusReply(451, "4.6.0", "Alias expansion error"))


def test_status_and_reason_as_bounce_append_takes_them():
    # A milter's "554 go away" has no enhanced code: 5.0.0, as bounce_append() makes it.
    env, _ = returned(ENV, CONTENT, StatusReply(554, "", "go away"), now=5.0)
    [r] = env.recipients
    assert (r.state, r.dsn_status, r.reason, r.last_attempt) == (
        RcptState.BOUNCED, "5.0.0", "go away", 5.0)
    env, _ = returned(ENV, CONTENT, StatusReply(552, "5.3.4", "Error: message file too big"),
                      now=5.0)
    assert (env.recipients[0].dsn_status, env.recipients[0].reason) == (
        "5.3.4", "message file too big")


def test_header_only_unless_too_many_hops():
    env, content = returned(ENV, CONTENT, StatusReply(550, "5.7.1", "no"), now=0.0)
    assert (content, env.ret, env.size) == (b"Subject: s\r\nTo: b@y.test\r\n", "HDRS",
                                            len(content))
    env, content = returned(ENV, CONTENT, TOO_MANY_HOPS, now=0.0)
    assert (content, env.ret) == (b"Subject: s\r\nTo: b@y.test\r\n\r\nbody\r\n", "FULL")
