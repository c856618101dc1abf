"""Received: headers against Postfix's layout (postfix-compat.md sections 3.5 and 5), and their dates."""

import calendar
import time
from datetime import datetime, timedelta, timezone

import pytest

from mailsys.message.dates import mail_date, short_time, utc_stamp
from mailsys.message.received import TlsInfo, protocol_name, received_local, received_smtp

UTC = timezone.utc
# Fri, 27 Nov 2026 00:22:14 +0000: the arrival of AFD7C20E273 in the live capture.
ARRIVAL = calendar.timegm((2026, 11, 27, 0, 22, 14))


def postfix_to_mailsys(text):
    """The one intended difference: mail_name "(Postfix)" becomes "(mailsys)"."""
    return text.replace("(Postfix)", "(mailsys)").replace("(Postfix,", "(mailsys,")


def smtp_received(**kw):
    args = dict(helo="client.example.org", client_name="client.example.org",
                client_addr="192.0.2.10", myhostname="mx.example.com", protocol="ESMTP",
                queue_id="AFD7C20E273", recipients=["dave@bounce.example"], arrival=ARRIVAL,
                tz=UTC)
    args.update(kw)
    return received_smtp(**args)


def test_esmtp_one_recipient_matches_the_live_postfix_header():
    # dsn-bounce-error-transport.eml, part 3, as Postfix 3.7.11 wrote it.
    live = ("Received: from client.example.org (client.example.org [192.0.2.10])\n"
            "\tby mx.example.com (Postfix) with ESMTP id AFD7C20E273\n"
            "\tfor <dave@bounce.example>; Fri, 27 Nov 2026 00:22:14 +0000 (UTC)")
    assert smtp_received() == postfix_to_mailsys(live)


def test_esmtp_two_recipients_omits_for_and_puts_the_date_on_its_own_line():
    got = smtp_received(recipients=["a@example.org", "b@example.org"])
    assert got == ("Received: from client.example.org (client.example.org [192.0.2.10])\n"
                   "\tby mx.example.com (mailsys) with ESMTP id AFD7C20E273;\n"
                   "\tFri, 27 Nov 2026 00:22:14 +0000 (UTC)")


def test_esmtps_with_tls_received_header_matches_postfix_layout():
    tls = TlsInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", 256, 256,
                  "key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256")
    got = smtp_received(protocol="ESMTPS", tls=tls, helo="localhost", client_name="localhost",
                        client_addr="127.0.0.1", queue_id="4C19C20E044",
                        recipients=["bob@example.com"])
    assert got == (
        "Received: from localhost (localhost [127.0.0.1])\n"
        "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)\n"
        "\t key-exchange X25519 server-signature RSA-PSS (2048 bits) server-digest SHA256)\n"
        "\t(No client certificate requested)\n"
        "\tby mx.example.com (mailsys) with ESMTPS id 4C19C20E044\n"
        "\tfor <bob@example.com>; Fri, 27 Nov 2026 00:22:14 +0000 (UTC)")


@pytest.mark.parametrize("nrcpt", [1, 2])
def test_esmtpa_and_esmtpsa_carry_the_authenticated_sender_comment(nrcpt):
    rcpts = ["r1@example.net", "r2@example.net"][:nrcpt]
    got = smtp_received(protocol="ESMTPSA", sasl_username="bob", recipients=rcpts,
                        tls=TlsInfo("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384", 256, 256))
    lines = got.split("\n")
    assert lines[1] == "\t(using TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits))"
    assert lines[2] == "\t(No client certificate requested)"
    assert lines[3] == "\t(Authenticated sender: bob)"
    if nrcpt == 1:
        assert lines[4:] == ["\tby mx.example.com (mailsys) with ESMTPSA id AFD7C20E273",
                             "\tfor <r1@example.net>; Fri, 27 Nov 2026 00:22:14 +0000 (UTC)"]
    else:
        assert lines[4:] == ["\tby mx.example.com (mailsys) with ESMTPSA id AFD7C20E273;",
                             "\tFri, 27 Nov 2026 00:22:14 +0000 (UTC)"]
    plain_auth = smtp_received(protocol="ESMTPA", sasl_username="bob")
    assert plain_auth.split("\n")[1] == "\t(Authenticated sender: bob)"
    assert " with ESMTPA id " in plain_auth


def test_client_certificate_comments():
    base = dict(protocol="TLSv1.3", cipher="X", usebits=128, algbits=128)
    verified = smtp_received(tls=TlsInfo(**base, peer_cn="c.example", issuer_cn="CA",
                                         peer_verified=True))
    assert '\t(Client CN "c.example", Issuer "CA" (verified OK))' in verified.split("\n")
    unverified = smtp_received(tls=TlsInfo(**base, peer_cn="c.example", issuer_cn="CA"))
    assert '\t(Client CN "c.example", Issuer "CA" (not verified))' in unverified.split("\n")
    asked = smtp_received(tls=TlsInfo(**base, ask_ccert=True))
    assert "\t(Client did not present a certificate)" in asked.split("\n")


def test_sasl_username_cannot_break_out_of_its_comment():
    got = smtp_received(sasl_username="evil) by attacker (x\r\nX-Injected: 1")
    line = got.split("\n")[1]
    assert line.startswith("\t(Authenticated sender: ")
    assert "\r" not in got and got.count("\n") == 3
    # parentheses stay balanced, so the comment ends where it should
    body = line[len("\t(Authenticated sender: "):-1]
    depth = 0
    for ch in body:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0


def test_no_helo_uses_client_name_and_ipv6_is_an_address_literal():
    got = smtp_received(helo="", client_name="unknown", client_addr="2001:db8::5")
    assert got.split("\n")[0] == "Received: from unknown (unknown [IPv6:2001:db8::5])"


def test_recipient_with_unusual_local_part_is_quoted():
    got = smtp_received(recipients=["john doe@example.com"])
    assert '\tfor <"john doe"@example.com>; ' in got


def test_protocol_names():
    assert protocol_name(esmtp=False) == "SMTP"
    assert protocol_name() == "ESMTP"
    assert protocol_name(tls=True) == "ESMTPS"
    assert protocol_name(auth=True) == "ESMTPA"
    assert protocol_name(tls=True, auth=True) == "ESMTPSA"
    assert protocol_name(smtputf8=True) == "UTF8SMTP"
    assert protocol_name(smtputf8=True, tls=True, auth=True) == "UTF8SMTPSA"


def test_received_local_matches_postfix_internal_and_pickup_forms():
    # dsn-bounce-error-transport.eml: the header cleanup got with the bounce.
    live = ("Received: by mx.example.com (Postfix)\n"
            "\tid B597F20E277; Fri, 27 Nov 2026 00:22:14 +0000 (UTC)")
    assert received_local(myhostname="mx.example.com", queue_id="B597F20E277",
                          arrival=ARRIVAL, tz=UTC) == postfix_to_mailsys(live)
    got = received_local(myhostname="mx.example.com", queue_id="9C98620E1EE",
                         arrival=ARRIVAL, uid=0, tz=UTC)
    assert got.split("\n")[0] == "Received: by mx.example.com (mailsys, from userid 0)"


def test_mail_date_pads_the_day_with_a_space_as_postfix_3_7():
    t = calendar.timegm((2026, 12, 2, 0, 23, 6))
    assert mail_date(t, UTC) == "Wed,  2 Dec 2026 00:23:06 +0000 (UTC)"
    assert mail_date(ARRIVAL, UTC) == "Fri, 27 Nov 2026 00:22:14 +0000 (UTC)"


def test_mail_date_offsets_and_zone_names():
    india = timezone(timedelta(hours=5, minutes=30), "IST")
    assert mail_date(ARRIVAL, india) == "Fri, 27 Nov 2026 05:52:14 +0530 (IST)"
    newfoundland = timezone(-timedelta(hours=3, minutes=30), "NST")
    assert mail_date(ARRIVAL, newfoundland) == "Thu, 26 Nov 2026 20:52:14 -0330 (NST)"


def test_mail_date_local_zone_is_well_formed():
    text = mail_date(ARRIVAL)
    assert len(text.split()) == 7 and text.endswith(")")


def test_short_time_and_utc_stamp():
    assert short_time(calendar.timegm((2026, 11, 27, 0, 21, 40)), UTC) == "Nov 27 00:21:40"
    assert short_time(calendar.timegm((2026, 11, 7, 9, 1, 2)), UTC) == "Nov  7 09:01:02"
    assert utc_stamp(ARRIVAL) == "20261127002214"


def test_mail_date_from_its_per_second_cache_is_the_uncached_text():
    india = timezone(timedelta(hours=5, minutes=30), "IST")
    for t in (ARRIVAL, ARRIVAL + 0.25, ARRIVAL + 0.9999996, ARRIVAL + 1, ARRIVAL + 1.5):
        for tz in (UTC, india, UTC, None):
            d = datetime.fromtimestamp(t, tz) if tz else datetime.fromtimestamp(t).astimezone()
            assert mail_date(t, tz)[:25] == d.strftime("%a, %e %b %Y %H:%M:%S"), (t, tz)


def test_mail_date_follows_a_change_of_the_local_zone(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert mail_date(ARRIVAL) == "Fri, 27 Nov 2026 00:22:14 +0000 (UTC)"
        monkeypatch.setenv("TZ", "Asia/Tokyo")
        time.tzset()
        assert mail_date(ARRIVAL + 0.5) == "Fri, 27 Nov 2026 09:22:14 +0900 (JST)"
    finally:
        monkeypatch.undo()
        time.tzset()
