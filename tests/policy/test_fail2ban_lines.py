"""Reject log lines as fail2ban's stock postfix filter (1.0.2, mode normal)
reads them: the lines Postfix gets banned for must match, the others not."""

import re
import sys
from pathlib import Path

import pytest

from mailsys.policy.restrictions import DnsStatus, HostRecords, PolicyContext, Restrictions, \
    reject_log_text

sys.path.insert(0, str(Path(__file__).parents[1]))      # tests/memtable.py (tests/ is no package)
from memtable import Table  # noqa: E402

PREFIX = re.compile(r"^\w+: (?:milter-)?reject: (?P<content>.+)$")
NORMAL = re.compile(
    r"^[A-Z]{4} from [^[]*\[(?P<host>[^\]]+)\](?::\d+)?: [45][50][04] [45]\.\d\.\d+ "
    r"(?:(?:<[^>]*>)?: )?(?:(?:Helo command|(?:Sender|Recipient) address) rejected: )?"
    r"(?:Service unavailable|(?:Client host|Command|Data command) rejected|Relay access denied|"
    r"(?:Host|Domain) not found|need fully-qualified hostname|match|"
    r"[Uu](?:ser unknown|ndeliverable address))\b")


def restrictions(**over):
    settings = {"mydestination": ("example.com",), "mynetworks": ("127.0.0.0/8",),
                "local_recipient_maps": ("texthash:/local",)}
    settings.update(over)
    return Restrictions(None, lambda spec, cfg: Table(alice="x"), overrides=settings)


def listed(name):
    return DnsStatus.NOT_FOUND if "nowhere" in name else DnsStatus.EXISTS


def on_every_list(kind, name):
    return HostRecords(DnsStatus.EXISTS, ("127.0.0.2",)) if kind == "DNSXL" \
        else HostRecords(DnsStatus.NOT_FOUND)


CASES = [
    ({}, "x@remote.example", {}, True),                                          # 454 relay
    ({"smtpd_relay_restrictions": ("reject_unauth_destination",)}, "x@remote.example", {}, True),
    ({}, "nobody@example.com", {}, True),                                        # 550 user unknown
    ({"smtpd_client_restrictions": ("reject",)}, "alice@example.com", {}, True),
    ({"smtpd_helo_restrictions": ("reject_non_fqdn_helo_hostname",)}, "alice@example.com",
     {"helo": "localhost"}, True),
    ({"smtpd_sender_restrictions": ("reject_unknown_sender_domain",)}, "alice@example.com",
     {"sender": "a@nowhere.example"}, True),
    ({"smtpd_client_restrictions": ("reject_rbl_client", "zen.example")}, "alice@example.com", {}, True),
    ({"smtpd_client_restrictions": ("reject_unknown_client_hostname",)}, "alice@example.com", {}, True),
    # not bannable by design: 501 and the sender-syntax phrase
    ({"smtpd_helo_restrictions": ("reject_invalid_helo_hostname",)}, "alice@example.com",
     {"helo": "x y"}, False),
    ({"smtpd_sender_restrictions": ("reject_non_fqdn_sender",)}, "alice@example.com",
     {"sender": "a"}, False),
]


@pytest.mark.parametrize("over, recipient, ctx_over, banned", CASES)
def test_fail2ban_sees_what_postfix_would_be_banned_for(over, recipient, ctx_over, banned):
    fields = dict(client_name="unknown", client_addr="2001:db8::5", helo="h.example",
                  sender="s@h.example", recipient=recipient)
    fields.update(ctx_over)
    ctx = PolicyContext(**fields)
    d = restrictions(**over).evaluate_rcpt(ctx, listed, records=on_every_list)
    assert not d.accepted
    line = reject_log_text(d, ctx, queue_id="NOQUEUE")
    content = PREFIX.match(line).group("content")
    m = NORMAL.match(content)
    assert bool(m) is banned, line
    if m:
        assert m.group("host") == "2001:db8::5"
