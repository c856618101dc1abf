"""The smtp client logs in to a smarthost: aiosmtpd as the relayhost, behind a real master.

The setup every Postfix admin writes (SASL_README, "Enabling SASL
authentication in the Postfix SMTP/LMTP client"):

    relayhost = [127.0.0.1]:PORT
    smtp_sasl_auth_enable = yes
    smtp_sasl_password_maps = hash:etc/sasl_passwd     # built with mailsys postmap
    smtp_tls_security_level = encrypt

The texts asserted here are what Postfix 3.7.11 logged against the same
aiosmtpd peer (the comment at each test gives its line).
"""

from __future__ import annotations

import re
import runpy
import smtplib
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
import trustme

pytestmark = pytest.mark.integration

here = Path(__file__).parent
h = SimpleNamespace(**runpy.run_path(str(here / "smtpd_helpers.py")))

SERVICES = ["cleanup unix - - n - 0 cleanup", "qmgr unix n - n 300 1 qmgr",
            "bounce unix - - n - 0 bounce",
            "smtp unix - - n - - smtp"]
USER, SECRET = "alice@example.test", "s3cret word"


@dataclass
class Seen:
    login: bytes
    tls: bool
    mail_from: str
    rcpts: list[str]


@dataclass
class Relay:
    """aiosmtpd's handler and authenticator: who logged in, what came."""
    secret: str = SECRET
    messages: list[Seen] = field(default_factory=list)
    attempts: list[tuple[str, bytes]] = field(default_factory=list)

    def __call__(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult
        self.attempts.append((mechanism, auth_data.login))
        ok = auth_data.login == USER.encode() and auth_data.password == self.secret.encode()
        # handled=False: aiosmtpd then sends its 535 itself.
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    async def handle_DATA(self, server, session, envelope):
        login = session.auth_data.login if session.authenticated else b""
        self.messages.append(Seen(login, session.ssl is not None, envelope.mail_from,
                                  list(envelope.rcpt_tos)))
        return "250 2.0.0 Ok: queued as R1"


@pytest.fixture(scope="module")
def server_tls(tmp_path_factory):
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("relay.example.test").configure_cert(ctx)
    return ctx


@pytest.fixture
def relay(server_tls):
    """Start an aiosmtpd relay: relay(**SMTP kwargs) -> (handler, port).

    Tests name it before mailsys_instance, so that the master (and the
    connections its smtp process keeps in its cache) stops first: a
    controller stopped under an open connection leaves a transport for the
    garbage collector to warn about in a later test."""
    from aiosmtpd.controller import Controller
    started = []

    def start(handler=None, **kw):
        handler = handler or Relay()
        port = _free_port()
        kw.setdefault("tls_context", server_tls)
        c = Controller(handler, hostname="127.0.0.1", port=port, authenticator=handler,
                       ident="relay.example.test ESMTP", **kw)
        c.start()
        started.append(c)
        return handler, port
    yield start
    for c in started:
        c.stop()


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_mailsys(inst, relay_port, passwd: str | None = None, **main_cf):
    """A master with smtpd and smtp; the password table built with postmap; one message sent."""
    etc = inst.config_dir
    port = inst.free_port()
    params = {"relayhost": f"[127.0.0.1]:{relay_port}", "mydestination": "",
              "mynetworks": "127.0.0.0/8", "smtp_sasl_auth_enable": "yes",
              "smtp_sasl_password_maps": f"hash:{etc}/sasl_passwd",
              "smtp_tls_security_level": "encrypt", "smtp_sasl_security_options": "noanonymous"}
    params.update(main_cf)
    inst.write_config(master_cf=[*SERVICES, f"127.0.0.1:{port} inet n - n - - smtpd"],
                      main_cf=params)
    (etc / "sasl_passwd").write_text(
        passwd if passwd is not None else f"[127.0.0.1]:{relay_port} {USER}:{SECRET}\n")
    r = inst.cli("postmap", f"hash:{etc}/sasl_passwd")
    assert r.returncode == 0, r.stderr
    inst.start()
    inst.wait_until(lambda: h.listening(port))
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("client.example.test")
        s.mail("sender@example.test")
        s.rcpt("bob@remote.example")
        qid = h.qid_of(s.data(b"Subject: smarthost\r\n\r\nhello\r\n")[1])
    return qid


def test_login_to_the_smarthost_over_starttls(relay, mailsys_instance):
    handler, relay_port = relay(auth_require_tls=True)
    qid = run_mailsys(mailsys_instance, relay_port)
    log = mailsys_instance.wait_log("status=sent", timeout=20)
    [seen] = handler.messages
    assert seen == Seen(USER.encode(), True, "sender@example.test", ["bob@remote.example"])
    # PLAIN before LOGIN, as the Cyrus client Postfix uses picks it.
    assert handler.attempts == [("PLAIN", USER.encode())]
    assert re.search(rf"{qid}: to=<bob@remote\.example>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:"
                     rf"{relay_port}, .*dsn=2\.0\.0, status=sent \(250 2\.0\.0 Ok: queued as R1\)",
                     log), log


def test_the_host_name_is_looked_up_when_the_next_hop_is_not(relay, mailsys_instance):
    # Postfix smtp_sasl_passwd_lookup(): the server's host name, then the
    # destination as written.
    handler, relay_port = relay(auth_require_tls=False)
    run_mailsys(mailsys_instance, relay_port, passwd=f"127.0.0.1 {USER}:{SECRET}\n",
                smtp_tls_security_level="none")
    mailsys_instance.wait_log("status=sent", timeout=20)
    [seen] = handler.messages
    assert (seen.login, seen.tls) == (USER.encode(), False)


def test_no_table_entry_sends_without_login(relay, mailsys_instance):
    # The next hop is [127.0.0.1]:PORT: "[127.0.0.1]" without the port is
    # no key of it (Postfix 3.7.11 sent this one without AUTH too).
    handler, relay_port = relay(auth_require_tls=False)
    run_mailsys(mailsys_instance, relay_port, passwd="[127.0.0.1] u:p\n",
                smtp_tls_security_level="none")
    mailsys_instance.wait_log("status=sent", timeout=20)
    assert handler.attempts == [] and handler.messages[0].login == b""


def test_a_refused_login_defers_with_the_servers_reply(relay, mailsys_instance):
    # Postfix 3.7.11, same peer: "status=deferred (SASL authentication failed;
    # server 127.0.0.1[127.0.0.1] said: 535 5.7.8 Authentication credentials
    # invalid)", dsn=4.7.8 (smtp_sasl_auth_soft_bounce = yes).
    handler, relay_port = relay(Relay(secret="another"), auth_require_tls=True)
    qid = run_mailsys(mailsys_instance, relay_port)
    log = mailsys_instance.wait_log("status=deferred", timeout=20)
    assert handler.messages == [] and len(handler.attempts) == 1
    assert re.search(rf"{qid}: to=<bob@remote\.example>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:"
                     rf"{relay_port}, .*dsn=4\.7\.8, status=deferred \(SASL authentication "
                     rf"failed; server 127\.0\.0\.1\[127\.0\.0\.1\] said: 535 5\.7\.8 "
                     rf"Authentication credentials invalid\)", log), log
    assert qid in mailsys_instance.cli("mailq").stdout
    # The status line says it all: no line of its own for the last server.
    assert log.count("SASL authentication failed") == 1, log


def test_a_refused_login_is_not_tried_again_with_the_auth_cache(relay, mailsys_instance):
    # Postfix 3.7.11, smtp_sasl_auth_cache_name = proxy:btree:..., the same
    # refusing peer, two messages: the peer saw one AUTH; the second said
    # "dsn=4.7.8, status=deferred (SASL [CACHED] authentication failed;
    # server 127.0.0.1 said: 535 5.7.8 Authentication credentials invalid)".
    inst = mailsys_instance
    handler, relay_port = relay(Relay(secret="another"), auth_require_tls=False)
    first = run_mailsys(inst, relay_port, smtp_tls_security_level="none",
                        smtp_sasl_auth_cache_name=f"proxy:lmdb:{inst.root}/sasl_auth_cache")
    inst.wait_log(f"{first}: to=<bob@remote.example>", timeout=20)
    smtpd = next(line for line in (inst.config_dir / "master.cf").read_text().splitlines()
                 if line.endswith(" smtpd"))
    with smtplib.SMTP("127.0.0.1", int(smtpd.split()[0].rpartition(":")[2]), timeout=10) as s:
        s.sendmail("sender@example.test", ["bob@remote.example"], b"Subject: again\r\n\r\nhi\r\n")
    log = inst.wait_log("SASL [CACHED]", timeout=20)
    assert re.search(rf"to=<bob@remote\.example>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:"
                     rf"{relay_port}, .*dsn=4\.7\.8, status=deferred \(SASL \[CACHED\] "
                     rf"authentication failed; server 127\.0\.0\.1 said: 535 5\.7\.8 "
                     rf"Authentication credentials invalid\)", log), log
    assert len(handler.attempts) == 1 and handler.messages == []


def test_hard_bounce_when_soft_bounce_is_off(relay, mailsys_instance):
    handler, relay_port = relay(Relay(secret="another"), auth_require_tls=True)
    qid = run_mailsys(mailsys_instance, relay_port, smtp_sasl_auth_soft_bounce="no")
    log = mailsys_instance.wait_log("status=bounced", timeout=20)
    assert re.search(rf"{qid}: to=<bob@remote\.example>, .*dsn=5\.7\.8, status=bounced "
                     rf"\(SASL authentication failed; server 127\.0\.0\.1\[127\.0\.0\.1\] said: "
                     rf"535 5\.7\.8 Authentication credentials invalid\)", log), log


def test_no_mechanism_the_security_options_allow(relay, mailsys_instance):
    # The default smtp_sasl_security_options = noplaintext, noanonymous and
    # a server with only PLAIN and LOGIN. Postfix 3.7.11: "warning: SASL
    # authentication failure: No worthy mechs found", then "status=deferred
    # (SASL authentication failed; cannot authenticate to server
    # 127.0.0.1[127.0.0.1]: no mechanism available)", dsn=4.7.0.
    handler, relay_port = relay(auth_require_tls=True)
    qid = run_mailsys(mailsys_instance, relay_port,
                      smtp_sasl_security_options="noplaintext, noanonymous")
    log = mailsys_instance.wait_log("status=deferred", timeout=20)
    assert handler.attempts == []
    assert "warning: SASL authentication failure: No worthy mechs found" in log
    assert re.search(rf"{qid}: to=<bob@remote\.example>, .*dsn=4\.7\.0, status=deferred "
                     rf"\(SASL authentication failed; cannot authenticate to server "
                     rf"127\.0\.0\.1\[127\.0\.0\.1\]: no mechanism available\)", log), log


def test_the_mechanism_filter_leaving_nothing(relay, mailsys_instance):
    # Postfix 3.7.11: "warning: 127.0.0.1[127.0.0.1]:PORT offered no
    # supported AUTH mechanisms: 'LOGIN PLAIN'", and the delivery defers with
    # "SASL authentication failed: server 127.0.0.1[127.0.0.1] offered no
    # compatible authentication mechanisms for this type of connection security".
    handler, relay_port = relay(auth_require_tls=True)
    qid = run_mailsys(mailsys_instance, relay_port, smtp_sasl_mechanism_filter="cram-md5")
    log = mailsys_instance.wait_log("status=deferred", timeout=20)
    assert (f"warning: 127.0.0.1[127.0.0.1]:{relay_port} offered no supported AUTH "
            "mechanisms: 'LOGIN PLAIN'") in log, log
    assert re.search(rf"{qid}: .*dsn=4\.7\.0, status=deferred \(SASL authentication failed: "
                     rf"server 127\.0\.0\.1\[127\.0\.0\.1\] offered no compatible "
                     rf"authentication mechanisms for this type of connection security\)", log), log


def test_tls_policy_map_asks_for_tls_at_the_relayhost(relay, mailsys_instance):
    # Global TLS off; the policy table turns it on for this next hop. The
    # relay refuses mail without STARTTLS, so plaintext would not get through.
    handler, relay_port = relay(auth_require_tls=True, require_starttls=True)
    etc = mailsys_instance.config_dir
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "tls_policy").write_text(f"[127.0.0.1]:{relay_port} encrypt protocols=>=TLSv1.2\n")
    run_mailsys(mailsys_instance, relay_port, smtp_tls_security_level="none",
                smtp_tls_policy_maps=f"texthash:{etc}/tls_policy")
    mailsys_instance.wait_log("status=sent", timeout=20)
    [seen] = handler.messages
    assert (seen.login, seen.tls) == (USER.encode(), True)


# -- in-process: the agent alone, for what needs no master ------------------------

a = SimpleNamespace(**runpy.run_path(str(here / "agent_helpers.py")))


def deliver_in_process(tmp_path, program: str, nexthop: str, sender: str, **main_cf):
    import trio
    from dataclasses import replace

    from mailsys.config import load
    from mailsys.config.client_program import client_config
    from mailsys.runtime.resolver import Resolver
    from mailsys.runtime.smtp_agent import SmtpAgent, SmtpSettings
    from mailsys.runtime.smtp_sasl import SaslSettings
    from mailsys.runtime.smtp_tls import tls_policy
    etc = tmp_path / "etc"
    etc.mkdir(exist_ok=True)
    (etc / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in main_cf.items()))
    cfg = client_config(load(etc), program)
    settings = replace(SmtpSettings.from_config(cfg, program=program, tls=tls_policy(cfg),
                                                sasl=SaslSettings.from_config(cfg, program)),
                       cache_time_limit=0)

    async def content(qid):
        return a.CONTENT
    agent = SmtpAgent(settings, Resolver([("127.0.0.1", 9)], lifetime=1.0), content)
    return trio.run(agent.deliver, a.request(nexthop, "bob@example.org", sender=sender,
                                             transport=program))


def test_lmtp_logs_in_with_the_lmtp_sasl_parameters(tmp_path):
    from aiosmtpd.controller import Controller
    from aiosmtpd.lmtp import LMTP

    class Lmtp(Controller):
        def factory(self):
            return LMTP(self.handler, hostname="lmtp.test", authenticator=self.handler,
                        auth_require_tls=False)
    handler, port = Relay(), _free_port()
    (tmp_path / "lmtp_passwd").write_text(f"127.0.0.1:{port} {USER}:{SECRET}\n")
    c = Lmtp(handler, hostname="127.0.0.1", port=port)
    c.start()
    try:
        # smtp_sasl_* say nothing: the lmtp program reads lmtp_sasl_*.
        status = deliver_in_process(tmp_path, "lmtp", f"inet:127.0.0.1:{port}", "a@example.org",
                                    lmtp_sasl_auth_enable="yes",
                                    lmtp_sasl_password_maps=f"texthash:{tmp_path}/lmtp_passwd",
                                    lmtp_sasl_security_options="noanonymous")
    finally:
        c.stop()
    assert [r.status for r in status.results] == ["sent"]
    assert handler.attempts == [("PLAIN", USER.encode())]
    assert handler.messages[0].login == USER.encode()


def test_sender_dependent_login_comes_first(tmp_path, relay):
    handler, port = relay(auth_require_tls=False)
    (tmp_path / "passwd").write_text(f"[127.0.0.1]:{port} {USER}:{SECRET}\n"
                                     f"@example.net nobody:wrong\n")
    common = dict(smtp_sasl_auth_enable="yes", smtp_sasl_password_maps=f"texthash:{tmp_path}/passwd",
                  smtp_sasl_security_options="noanonymous", smtp_sender_dependent_authentication="yes")
    ok = deliver_in_process(tmp_path, "smtp", f"[127.0.0.1]:{port}", "someone@example.org", **common)
    bad = deliver_in_process(tmp_path, "smtp", f"[127.0.0.1]:{port}", "carol@example.net", **common)
    assert ok.results[0].status == "sent"
    r = bad.results[0]
    assert (r.status, r.dsn) == ("deferred", "4.7.8")
    # What a bounce or delay notice quotes, as Postfix's dsb_update() records it.
    assert (r.remote_mta, r.diagnostic) == (
        "127.0.0.1", "smtp; 535 5.7.8 Authentication credentials invalid")
    assert handler.attempts == [("PLAIN", USER.encode()), ("PLAIN", b"nobody")]


@pytest.fixture(scope="module")
def verifiable_relay_tls(tmp_path_factory):
    """A server context whose certificate is for 127.0.0.1, and its CA file."""
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return ctx, path


@pytest.mark.parametrize("level, sent", [("verify", True), ("encrypt", False)])
def test_plaintext_passwords_only_to_a_verified_server(tmp_path, relay, verifiable_relay_tls,
                                                       level, sent):
    # SASL_README's advice: noplaintext inside TLS unless the server
    # certificate is verified (smtp_sasl_tls_verified_security_options).
    ctx, ca = verifiable_relay_tls
    handler, port = relay(tls_context=ctx, auth_require_tls=True)
    (tmp_path / "passwd").write_text(f"[127.0.0.1]:{port} {USER}:{SECRET}\n")
    status = deliver_in_process(
        tmp_path, "smtp", f"[127.0.0.1]:{port}", "a@example.org",
        smtp_tls_security_level=level, smtp_tls_CAfile=ca, smtp_sasl_auth_enable="yes",
        smtp_sasl_password_maps=f"texthash:{tmp_path}/passwd",
        smtp_sasl_security_options="noplaintext, noanonymous",
        smtp_sasl_tls_security_options="noplaintext, noanonymous",
        smtp_sasl_tls_verified_security_options="noanonymous")
    r = status.results[0]
    if sent:
        assert r.status == "sent" and handler.attempts == [("PLAIN", USER.encode())]
    else:
        assert (r.status, r.dsn, r.reason) == (
            "deferred", "4.7.0", "SASL authentication failed; cannot authenticate to server "
            "127.0.0.1[127.0.0.1]: no mechanism available")
        assert handler.attempts == []
