"""*_delivery_status_filter: Postfix's dsn_filter rules, on a real regexp table."""

from mailsys.config import load
from mailsys.config.tables import open_table
from mailsys.delivery.report import bounced, deferred, sent
from mailsys.delivery.status_filter import StatusFilter
from mailsys.ipc.proto.deliver import DeliverRecipient

RCPT = DeliverRecipient(0, "bob@example.test")

# The table used on Postfix 3.7.11 for the results quoted in status_filter.py.
TABLE = (r'/^2\.0\.0 delivered to mailbox$/ 2.0.0 stored in the mailbox' "\n"
         r'/^5\.1\.1 unknown user: (.*)$/ 4.3.0 no such user: $1' "\n"
         r'/^2\.0\.0 delivered to command: (.*)/ 5.0.0 bad' "\n"
         r'/^4\.2\.0 locked/ 5.2.0 gave up' "\n"
         r'/^5\.0\.0 junk/ no code here' "\n")


def make(tmp_path, param="local_delivery_status_filter", main=None):
    (tmp_path / "dsnf").write_text(TABLE)
    (tmp_path / "main.cf").write_text(main if main is not None
                                      else f"default_delivery_status_filter = regexp:{tmp_path}/dsnf\n")
    cfg = load(tmp_path)
    warnings: list[str] = []
    return StatusFilter.from_config(cfg, param, lambda spec: open_table(spec, cfg),
                                    warnings.append), warnings


def test_rewrites_within_success_and_within_failure(tmp_path):
    rewrite, warnings = make(tmp_path)
    r = rewrite(sent(RCPT, "delivered to mailbox", relay="local"))
    assert (r.status, r.dsn, r.reason, r.relay) == ("sent", "2.0.0", "stored in the mailbox", "local")
    r = rewrite(bounced(RCPT, "5.1.1", 'unknown user: "nosuchuser"', relay="local"))
    assert (r.status, r.dsn, r.reason) == ("deferred", "4.3.0", 'no such user: "nosuchuser"')
    r = rewrite(deferred(RCPT, "4.2.0", "locked out"))
    assert (r.status, r.dsn, r.reason) == ("bounced", "5.2.0", "gave up")
    assert warnings == []


def test_a_change_between_success_and_failure_is_refused(tmp_path):
    rewrite, warnings = make(tmp_path)
    given = sent(RCPT, "delivered to command: cat", relay="local")
    assert rewrite(given) == given
    junk = bounced(RCPT, "5.0.0", "junk")
    assert rewrite(junk) == junk
    assert warnings == ["local_delivery_status_filter: bad status code: 5.0.0 bad",
                        "local_delivery_status_filter: bad status code: no code here"]


def test_each_agent_reads_its_own_parameter(tmp_path):
    main = f"pipe_delivery_status_filter = regexp:{tmp_path}/dsnf\n"
    local, _ = make(tmp_path, main=main)
    pipe, _ = make(tmp_path, "pipe_delivery_status_filter", main=main)
    given = sent(RCPT, "delivered to mailbox")
    assert local(given) == given
    assert pipe(given).reason == "stored in the mailbox"
