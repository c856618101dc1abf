"""Which EHLO keywords smtpd offers a client: smtpd_discard_ehlo_keywords, its per-client
address maps, smtpd_sasl_exceptions_networks; the EHLO replies and log lines are
those of Postfix 3.7.11 for the same settings."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).parent / "smtpd_helpers.py")))


def ehlo_keywords(port) -> list[str]:
    with h.session(port) as s:
        code, text = s.ehlo("client.example")
        assert code == 250
        return [line.split()[0] for line in text.decode().splitlines()[1:]]


def test_the_client_map_replaces_the_global_list_and_the_line_names_them(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, {"smtpd_discard_ehlo_keywords": "etrn, chunking",
                          "smtpd_discard_ehlo_keyword_address_maps":
                              "inline:{ {127.0.0.1=pipelining,dsn} }"})
    words = ehlo_keywords(port)
    assert "PIPELINING" not in words and "DSN" not in words
    assert "ETRN" in words and "CHUNKING" in words
    inst.wait_log("discarding EHLO keywords: PIPELINING DSN")


def test_the_global_list_and_silent_discard(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, {"smtpd_discard_ehlo_keywords": "chunking, auth, etrn",
                          "smtpd_discard_ehlo_keyword_address_maps":
                              "inline:{ {192.0.2.1=silent-discard,dsn} }"})
    words = ehlo_keywords(port)
    assert "ETRN" not in words and "CHUNKING" not in words and "DSN" in words
    inst.wait_log("discarding EHLO keywords: AUTH ETRN CHUNKING")


def test_silent_discard_logs_nothing(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, {"smtpd_discard_ehlo_keywords": "silent-discard, etrn"})
    assert "ETRN" not in ehlo_keywords(port)
    with h.session(port) as s:
        s.ehlo("client.example")
        s.noop()
    inst.wait_log("noop=1")         # this session's disconnect line, not the probe's
    assert "discarding EHLO keywords" not in inst.log_text()


def test_sasl_exceptions_networks_hide_auth_but_it_still_works(mailsys_instance):
    inst = mailsys_instance
    port = h.start(inst, {"smtpd_sasl_auth_enable": "yes",
                          "smtpd_sasl_exceptions_networks": "127.0.0.0/8"})
    r = inst.cli("saslpasswd", "add", "ann", input="secret\n")
    assert r.returncode == 0, r.stderr
    assert not any(w.startswith("AUTH") for w in ehlo_keywords(port))
    with h.session(port) as s:
        s.ehlo("client.example")
        s.esmtp_features["auth"] = "PLAIN"         # smtplib logs in only where AUTH is offered
        assert s.login("ann", "secret")[0] == 235
