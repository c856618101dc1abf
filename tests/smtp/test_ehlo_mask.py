"""EHLO keyword discarding: Postfix's keyword names and line, and the client's view."""

from mailsys.smtp.client import Capabilities
from mailsys.smtp.ehlo_mask import discard_names, discard_text


def test_names_in_postfix_table_order_and_unknown_ones_dropped():
    assert discard_names(["DSN", "8bitmime", "bogus", "Pipelining"]) == (
        "8bitmime", "pipelining", "dsn")
    assert discard_text(["dsn", "8bitmime"]) == "discarding EHLO keywords: 8BITMIME DSN"
    assert discard_text(["dsn", "Silent-Discard"]) == ""
    assert discard_text([]) == discard_text(["bogus"]) == ""


def test_capabilities_without_discarded_keywords():
    caps = Capabilities(esmtp=True, pipelining=True, size=1000, starttls=True, dsn=True,
                        auth=("PLAIN",), xforward=("NAME",),
                        keywords=(("PIPELINING", ""), ("SIZE", "1000"), ("AUTH", "PLAIN"),
                                  ("AUTH=PLAIN", ""), ("DSN", ""), ("STARTTLS", "")))
    out = caps.without({"size", "auth", "pipelining", "xforward"})
    assert (out.pipelining, out.size, out.auth, out.xforward) == (False, None, (), ())
    assert out.starttls and out.dsn and out.esmtp
    assert out.keywords == (("DSN", ""), ("STARTTLS", ""))
