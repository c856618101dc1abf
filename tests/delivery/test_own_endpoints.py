"""Which (address, port) pairs the smtp agent takes for itself: the smtpd services in master.cf."""

from __future__ import annotations

from mailsys.config import load
from mailsys.runtime.smtp_agent import SmtpSettings, own_endpoints


def config(tmp_path, master: list[str], **params):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in params.items()))
    (etc / "master.cf").write_text("\n".join(master) + "\n")
    return load(etc)


def test_smtpd_services_with_and_without_a_host(tmp_path):
    cfg = config(tmp_path, [
        "127.0.0.2:2525 inet n - n - - smtpd",
        "2587 inet n - n - - smtpd",
        "[::1]:2626 inet n - n - - smtpd",
        "2727 inet n - n - - other",                  # not an smtpd: mail to it is no loop
        "smtp unix - - n - - smtp",
    ], inet_interfaces="loopback-only")
    assert own_endpoints(cfg) == {("127.0.0.2", 2525), ("127.0.0.1", 2587), ("::1", 2587),
                                  ("::1", 2626)}


def test_listed_interfaces(tmp_path):
    cfg = config(tmp_path, ["25 inet n - n - - smtpd"], inet_interfaces="192.0.2.7, [2001:db8::7]")
    assert own_endpoints(cfg) == {("192.0.2.7", 25), ("2001:db8::7", 25)}


def test_settings_from_config(tmp_path):
    cfg = config(tmp_path, [], smtp_rcpt_timeout="7s", smtp_helo_name="out.example.test",
                 smtp_mx_address_limit="3")
    s = SmtpSettings.from_config(cfg)
    assert s.helo_name == "out.example.test" and s.mx_address_limit == 3
    assert s.timeouts["smtp_rcpt_timeout"] == 7.0 and s.timeouts["smtp_rset_timeout"] == 20.0
    assert s.cache_time_limit == 2.0 and s.tls.level == "none"


def test_dns_disabled(tmp_path):
    cfg = config(tmp_path, [], smtp_dns_support_level="disabled")
    assert not SmtpSettings.from_config(cfg).mx_lookups


def test_dns_enabled_by_default(tmp_path):
    cfg = config(tmp_path, [], disable_dns_lookups="no")
    assert SmtpSettings.from_config(cfg).mx_lookups


def test_parameters_the_table_does_not_carry(tmp_path):
    cfg = config(tmp_path, [], smtp_connection_cache_time_limit="5s", smtp_rset_timeout="1m")
    s = SmtpSettings.from_config(cfg)
    assert s.cache_time_limit == 5.0 and s.timeouts["smtp_rset_timeout"] == 60.0


def test_no_output_rewriting_without_tables(tmp_path):
    # The send path tests settings.output for None and does nothing else.
    cfg = config(tmp_path, [], lmtp_generic_maps="inline:{ {a@x.example = b@x.example} }")
    assert SmtpSettings.from_config(cfg).output is None


def test_output_rewriting_per_program(tmp_path):
    from mailsys.config.client_program import client_config
    cfg = config(tmp_path, [], mydestination="x.example",
                 smtp_generic_maps="inline:{ {a@x.example = b@x.example} }",
                 lmtp_body_checks="inline:{ {secret = REJECT} }")
    smtp = SmtpSettings.from_config(cfg).output
    assert smtp.address("a@x.example", print) == "b@x.example" and smtp.body_checks is None
    lmtp = SmtpSettings.from_config(client_config(cfg, "lmtp"), program="lmtp").output
    assert lmtp.address("a@x.example", print) == "a@x.example"
    content, notes = lmtp.content(b"Subject: x\n\nsecret\n")
    assert [n.text for n in notes] == ["unsupported command in lmtp_body_checks map: REJECT"]
