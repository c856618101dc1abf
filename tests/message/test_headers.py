"""cleanup's header rules on real-looking messages (Postfix cleanup_message.c behaviour)."""

import calendar
from datetime import timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsys.message.headers import (
    HEADER_SIZE_LIMIT, TOO_MANY_HOPS, HeaderPolicy, clean_header, encode_header, header_end,
    has_bare_lf, missing_headers, to_crlf, wants_missing_headers,
)
from mailsys.message.received import received_smtp

UTC = timezone.utc
ARRIVAL = calendar.timegm((2026, 11, 27, 0, 22, 14))
HOST = "mx.example.com"
QID = "AFD7C20E273"
POLICY = HeaderPolicy(HOST)
RECEIVED = received_smtp(helo="client.example.org", client_name="client.example.org",
                         client_addr="192.0.2.10", myhostname=HOST, protocol="ESMTP",
                         queue_id=QID, recipients=["dave@bounce.example"], arrival=ARRIVAL,
                         tz=UTC)
OUR_RECEIVED = encode_header(RECEIVED)

FULL = (b"From: Alice <alice@example.com>\r\n"
        b"To: dave@bounce.example\r\n"
        b"Subject: bounce test\r\n"
        b"Date: Mon, 01 Jan 2024 12:00:00 +0000\r\n"
        b"Message-ID: <20240101.3@client.example.org>\r\n"
        b"\r\n"
        b"Hello Dave.\r\n")

BARE = (b"Subject: no ids here\r\n"
        b"\r\n"
        b"body\r\n")


def clean(content, *, add_missing=False, policy=POLICY, sender="alice@example.com", **kw):
    args = dict(policy=policy, received=RECEIVED, queue_id=QID, arrival=ARRIVAL,
                sender=sender, add_missing=add_missing, tz=UTC)
    args.update(kw)
    return clean_header(content, **args)


def stored(content, **kw):
    return clean(content, **kw).assemble(content)


def test_complete_remote_message_gets_only_our_received_header():
    r = clean(FULL)
    assert r.error is None
    assert r.assemble(FULL) == OUR_RECEIVED + FULL
    assert r.message_id == "<20240101.3@client.example.org>"
    assert r.log_lines == ("message-id=<20240101.3@client.example.org>",)
    assert r.hop_count == 1
    assert r.body_offset == FULL.index(b"\r\n\r\n") + 2


def test_remote_message_without_ids_gets_nothing_added_and_logs_empty_message_id():
    # Postfix default (always_add_missing_headers = no, remote client): the live
    # capture logs "QID: message-id=<>" and adds nothing.
    r = clean(BARE, add_missing=False)
    assert r.assemble(BARE) == OUR_RECEIVED + BARE
    assert r.log_lines == ("message-id=<>",)
    assert r.message_id == ""


def test_local_message_without_ids_gets_message_id_date_and_from_after_its_headers():
    r = clean(BARE, add_missing=True)
    assert r.assemble(BARE) == (
        OUR_RECEIVED
        + b"Subject: no ids here\r\n"
        + b"Message-Id: <20261127002214.AFD7C20E273@mx.example.com>\r\n"
        + b"Date: Fri, 27 Nov 2026 00:22:14 +0000 (UTC)\r\n"
        + b"From: alice@example.com\r\n"
        + b"\r\nbody\r\n")
    assert r.message_id == "<20261127002214.AFD7C20E273@mx.example.com>"
    assert r.log_lines == ("message-id=<20261127002214.AFD7C20E273@mx.example.com>",)


@pytest.mark.parametrize("content", [BARE, FULL, b"From: a@example.org\r\nResent-From: b@x\r\n\r\n",
                                     b"no header at all\r\n", b"Date: x\r\nTo: y\r\n\r\n"])
def test_missing_headers_are_those_clean_header_adds_and_then_none(content):
    # What milters are shown first (missing_headers) is what cleanup would
    # add; with them in the content cleanup adds nothing more.
    missing = missing_headers(content, policy=POLICY, queue_id=QID, arrival=ARRIVAL,
                              sender="alice@example.com", tz=UTC)
    r = clean(content, add_missing=True)
    added = b"".join(encode_header(t) for t in missing)
    assert r.header.endswith(added) and (added == b"") is (content == FULL)
    head = b"".join(content.partition(b"\r\n\r\n")[:1]) + b"\r\n" \
        if b"\r\n\r\n" in content else b""
    if head:
        again = head + added + b"\r\nbody\r\n"
        assert missing_headers(again, policy=POLICY, queue_id=QID, arrival=ARRIVAL,
                               sender="alice@example.com", tz=UTC) == ()
        assert clean(again, add_missing=True).header == OUR_RECEIVED + head + added


def test_local_complete_message_is_left_alone():
    assert stored(FULL, add_missing=True) == OUR_RECEIVED + FULL


def test_long_queue_id_message_id_has_no_timestamp():
    # live: "4jbDmW4NhRzJDXR: message-id=<4jbDmW4NhRzJDXR@mx.example.com>"
    r = clean(BARE, add_missing=True, queue_id="4jbDmW4NhRzJDXR")
    assert b"Message-Id: <4jbDmW4NhRzJDXR@mx.example.com>\r\n" in r.header
    assert r.log_lines == ("message-id=<4jbDmW4NhRzJDXR@mx.example.com>",)


def test_null_sender_gets_mailer_daemon_and_full_name_is_a_phrase():
    assert b"\r\nFrom: MAILER-DAEMON\r\n" in clean(BARE, add_missing=True, sender="").header
    r = clean(BARE, add_missing=True, fullname="Alice Example")
    assert b"\r\nFrom: Alice Example <alice@example.com>\r\n" in r.header
    r = clean(BARE, add_missing=True, fullname="Example, Alice")
    assert b'\r\nFrom: "Example, Alice" <alice@example.com>\r\n' in r.header


def test_header_from_format_obsolete_puts_the_full_name_in_a_comment():
    # Postfix 3.7.11, sendmail -F with header_from_format = obsolete wrote
    # these From: headers, the name as given, unfolded.
    obsolete = HeaderPolicy(HOST, header_from_format="obsolete")
    for name in ("Joe Q. Public", 'A (paren) \\back "q"', "a(b",
                 "Very Long Full Name That Goes On And On Beyond Seventy Columns Of Text"):
        r = clean(BARE, add_missing=True, fullname=name, policy=obsolete)
        assert f"\r\nFrom: alice@example.com ({name})\r\n".encode() in r.header
    assert b"\r\nFrom: alice@example.com\r\n" in clean(BARE, add_missing=True,
                                                         policy=obsolete).header
    assert b"\r\nFrom: MAILER-DAEMON\r\n" in clean(BARE, add_missing=True, sender="",
                                                     fullname="x", policy=obsolete).header


def test_header_from_format_is_read_from_the_config(tmp_path):
    from mailsys.config import load
    (tmp_path / "main.cf").write_text("myhostname = mx.example.com\n")
    assert HeaderPolicy.from_config(load(tmp_path)).header_from_format == "standard"
    (tmp_path / "main.cf").write_text("myhostname = mx.example.com\nheader_from_format = obsolete\n")
    assert HeaderPolicy.from_config(load(tmp_path)).header_from_format == "obsolete"


def test_added_from_folds_a_long_full_name_as_postfix():
    name = "Alice " + "Verylongsurname" * 4
    r = clean(BARE, add_missing=True, fullname=name)
    assert f"\r\nFrom: {name}\r\n\t<alice@example.com>\r\n".encode() in r.header


def test_non_ascii_full_name_is_rfc2047_encoded():
    r = clean(BARE, add_missing=True, fullname="Zoë Ürban")
    assert b"\r\nFrom: =?utf-8?Q?Zo=C3=AB_=C3=9Crban?= <alice@example.com>\r\n" in r.header


def test_resent_headers_switch_to_resent_checks():
    msg = (b"From: a@example.org\r\nDate: Mon, 01 Jan 2024 12:00:00 +0000\r\n"
           b"Message-ID: <orig@example.org>\r\nResent-From: b@example.org\r\n\r\nx\r\n")
    r = clean(msg, add_missing=True)
    added = r.header[len(OUR_RECEIVED) + msg.index(b"\r\n\r\n") + 2:]
    assert added == (b"Resent-Message-Id: <20261127002214.AFD7C20E273@mx.example.com>\r\n"
                     b"Resent-Date: Fri, 27 Nov 2026 00:22:14 +0000 (UTC)\r\n")
    assert r.log_lines == ("message-id=<orig@example.org>",
                           "resent-message-id=<20261127002214.AFD7C20E273@mx.example.com>")
    assert r.message_id == "<orig@example.org>"


def test_every_message_id_is_logged_and_the_first_is_kept():
    msg = (b"Message-ID: <one@example.org>\r\nMessage-ID: <two@example.org>\r\n"
           b"Resent-Message-ID: <three@example.org>\r\n\r\n")
    r = clean(msg)
    assert r.log_lines == ("message-id=<one@example.org>", "message-id=<two@example.org>",
                           "resent-message-id=<three@example.org>")
    assert r.message_id == "<one@example.org>"


def test_folded_headers_are_kept_byte_for_byte_and_message_id_is_unfolded_for_the_log():
    msg = (b"Subject: a folded\r\n subject line\r\n\tthat goes on\r\n"
           b"Message-ID:\r\n <folded@example.org>\r\n"
           b"To: a@example.org,\r\n    b@example.org\r\n\r\nbody\r\n")
    r = clean(msg)
    assert r.assemble(msg) == OUR_RECEIVED + msg
    assert r.log_lines == ("message-id=<folded@example.org>",)
    assert r.message_id == "<folded@example.org>"


def test_lf_only_input_is_stored_with_crlf():
    lf = FULL.replace(b"\r\n", b"\n")
    assert stored(lf) == OUR_RECEIVED + FULL
    lf_bare = BARE.replace(b"\r\n", b"\n")
    assert stored(lf_bare, add_missing=True) == stored(BARE, add_missing=True)


def test_mixed_line_ends_and_bare_cr_in_the_body():
    msg = b"Subject: x\n\r\nline one\nline two\r\nbare\rcr\n"
    assert stored(msg) == OUR_RECEIVED + b"Subject: x\r\n\r\nline one\r\nline two\r\nbare\rcr\r\n"


def test_return_path_bcc_and_content_length_are_dropped():
    msg = (b"Return-Path: <forged@example.org>\r\nFrom: a@example.org\r\n"
           b"Bcc: hidden@example.org,\r\n  other@example.org\r\nContent-Length: 5\r\n"
           b"X-Return-Path: kept\r\nResent-Bcc: x@example.org\r\n\r\nbody\r\n")
    assert stored(msg) == (OUR_RECEIVED + b"From: a@example.org\r\nX-Return-Path: kept\r\n"
                           b"\r\nbody\r\n")


def test_drop_list_follows_the_policy():
    msg = b"Return-Path: <x@example.org>\r\nX-Spam: yes\r\n\r\n"
    policy = HeaderPolicy(HOST, message_drop_headers=("x-spam",))
    assert stored(msg, policy=policy) == OUR_RECEIVED + b"Return-Path: <x@example.org>\r\n\r\n"


def test_header_larger_than_the_limit_is_truncated_and_the_message_accepted():
    policy = HeaderPolicy(HOST, header_size_limit=1000)
    folded = b"X-Big: start\r\n" + b"".join(b"\t" + b"%03d" % i + b"x" * 95 + b"\r\n"
                                           for i in range(50))
    msg = b"Subject: s\r\n" + folded + b"To: t@example.org\r\n\r\nbody\r\n"
    r = clean(msg, policy=policy)
    assert r.error is None and r.truncated == 1
    out = r.assemble(msg)
    big = out[out.index(b"X-Big:"):out.index(b"To: t@")]
    lines = big.split(b"\r\n")[:-1]
    # Postfix keeps adding whole continuation lines while the stored header
    # ("\n"-joined, no CR) is below the limit.
    stored_len = len(b"\n".join(lines))
    assert stored_len >= 1000 and len(b"\n".join(lines[:-1])) < 1000
    assert out.endswith(b"To: t@example.org\r\n\r\nbody\r\n")
    assert out.startswith(OUR_RECEIVED + b"Subject: s\r\n")


def test_header_larger_than_the_default_limit_on_one_line():
    huge = b"X-Huge: " + b"y" * (3 * HEADER_SIZE_LIMIT) + b"\r\n"
    msg = huge + b"Subject: after\r\n\r\nbody\r\n"
    r = clean(msg)
    assert r.error is None and r.truncated == 1
    out = r.assemble(msg)
    line = out[len(OUR_RECEIVED):out.index(b"\r\n", len(OUR_RECEIVED))]
    # cut at the first 2048-byte record boundary at or past the limit
    assert HEADER_SIZE_LIMIT <= len(line) < HEADER_SIZE_LIMIT + 2048
    assert out.endswith(b"\r\nSubject: after\r\n\r\nbody\r\n")


def test_header_exactly_at_the_limit_is_kept_whole():
    policy = HeaderPolicy(HOST, header_size_limit=200)
    line = b"X-A: " + b"z" * 195 + b"\r\n"      # 200 stored bytes
    r = clean(line + b"\r\n", policy=policy)
    assert r.truncated == 0 and r.assemble(line + b"\r\n") == OUR_RECEIVED + line + b"\r\n"
    # At the limit nothing more is added: the continuation line is discarded.
    msg = line + b" more\r\n\r\n"
    r = clean(msg, policy=policy)
    assert r.truncated == 1 and r.assemble(msg) == OUR_RECEIVED + line + b"\r\n"
    # One byte below the limit, the continuation line still goes in whole.
    shorter = b"X-A: " + b"z" * 194 + b"\r\n more\r\n\r\n"
    r = clean(shorter, policy=policy)
    assert r.truncated == 0 and r.assemble(shorter) == OUR_RECEIVED + shorter


def received_lines(n):
    return b"".join(b"Received: from h%d.example (h%d.example [192.0.2.1])\r\n"
                    b"\tby relay.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n" % (i, i)
                    for i in range(n))


def test_51_received_headers_are_too_many_hops():
    msg = received_lines(51) + b"Subject: loop\r\n\r\nbody\r\n"
    r = clean(msg)
    assert r.error == TOO_MANY_HOPS
    assert str(r.error) == "554 5.4.0 Error: too many hops"
    assert r.warnings == ("message rejected: hopcount exceeded",)
    assert r.hop_count == 52


def test_hop_limit_boundary_counts_our_own_received_header():
    # hop_count >= hopcount_limit rejects, and smtpd's Received: is hop 1.
    ok = clean(received_lines(48) + b"\r\n")
    assert ok.error is None and ok.hop_count == 49
    bad = clean(received_lines(49) + b"\r\n")
    assert bad.error == TOO_MANY_HOPS and bad.hop_count == 50
    assert clean(received_lines(2) + b"\r\n",
                 policy=HeaderPolicy(HOST, hopcount_limit=3)).error == TOO_MANY_HOPS


def test_ten_megabyte_body_is_untouched_and_never_parsed_as_headers():
    body = (b"Received: from fake (fake [1.2.3.4])\r\nMessage-ID: <fake@x>\r\n" * 4
            + b"0123456789abcdef" * (10 * 1024 * 1024 // 16) + b"\r\n")
    msg = b"Subject: big\r\n\r\n" + body
    r = clean(msg)
    assert r.hop_count == 1 and r.log_lines == ("message-id=<>",)
    assert r.body_offset == len(b"Subject: big\r\n")
    out = r.assemble(msg)
    assert len(out) == len(OUR_RECEIVED) + len(msg)
    assert out[len(r.header):] == msg[r.body_offset:]


def test_body_line_right_after_the_headers_is_kept_there():
    msg = b"Subject: s\r\nthis is not a header\r\nmore\r\n"
    r = clean(msg, add_missing=True, sender="")
    out = r.assemble(msg)
    assert out.endswith(b"From: MAILER-DAEMON\r\nthis is not a header\r\nmore\r\n")
    assert r.body_offset == len(b"Subject: s\r\n")


def test_content_starting_with_white_space_gets_a_separator_line():
    msg = b"  indented first line\r\nSubject: not a header now\r\n"
    assert header_end(msg) == 0
    assert stored(msg) == OUR_RECEIVED + b"\r\n" + msg


def test_header_without_final_line_end_and_empty_content():
    assert stored(b"Subject: s", add_missing=True, sender="") == (
        OUR_RECEIVED + b"Subject: s\r\n"
        b"Message-Id: <20261127002214.AFD7C20E273@mx.example.com>\r\n"
        b"Date: Fri, 27 Nov 2026 00:22:14 +0000 (UTC)\r\nFrom: MAILER-DAEMON\r\n")
    assert stored(b"") == OUR_RECEIVED


def test_obsolete_space_before_colon_is_normalized():
    msg = b"Subject : spaced\r\nMessage-ID  : <id@example.org>\r\n\r\n"
    r = clean(msg)
    assert r.assemble(msg) == (OUR_RECEIVED + b"Subject: spaced\r\n"
                               b"Message-ID: <id@example.org>\r\n\r\n")
    assert r.message_id == "<id@example.org>"


def test_undisclosed_recipients_header_only_when_configured_and_no_to_or_cc():
    policy = HeaderPolicy(HOST, undisclosed_recipients_header="To: undisclosed-recipients:;")
    assert b"\r\nTo: undisclosed-recipients:;\r\n" in clean(BARE, add_missing=True,
                                                            policy=policy).header
    assert b"undisclosed" not in clean(BARE, add_missing=True).header
    assert b"undisclosed" not in clean(FULL, add_missing=True, policy=policy).header
    with_cc = b"Cc: c@example.org\r\n\r\n"
    assert b"undisclosed" not in clean(with_cc, add_missing=True, policy=policy).header


def test_wants_missing_headers_follows_postfix_rewrite_context_rules():
    assert wants_missing_headers(local_client=True)
    assert not wants_missing_headers(local_client=False)
    assert wants_missing_headers(local_client=False, remote_header_rewrite_domain="domain.invalid")
    assert wants_missing_headers(local_client=False, always_add_missing_headers=True)


def test_policy_from_config_mapping():
    cfg = {"myhostname": "mx.example.org", "header_size_limit": 5000,
           "message_drop_headers": "bcc, return-path"}
    p = HeaderPolicy.from_config(cfg)
    assert p == HeaderPolicy("mx.example.org", header_size_limit=5000,
                             message_drop_headers=("bcc", "return-path"))


def test_helpers():
    assert to_crlf(b"a\nb\r\nc\r") == b"a\r\nb\r\nc\r"
    assert to_crlf(b"a\r\n") == b"a\r\n"
    assert header_end(FULL) == FULL.index(b"\r\n\r\n") + 2
    assert header_end(b"\r\nSubject: body\r\n") == 0
    assert encode_header("A: b\n\tc") == b"A: b\r\n\tc\r\n"


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b".", b"x", b"\r\r\n", b"\n\r"]), max_size=30))
def test_has_bare_lf_is_an_lf_without_a_cr_before_it(pieces):
    data = b"".join(pieces)
    assert has_bare_lf(data) == (data.count(b"\n") != data.count(b"\r\n"))


@pytest.mark.parametrize("data,bare", [
    (b"", False), (b"abc", False), (b"a\r\nb\r\n", False), (b"a\rb\r\n", False),
    (b"a\r.\n", True), (b"\n", True), (b"a\r\nb\n", True), (b"\r\r\n", False), (b"\n\r", True),
])
def test_has_bare_lf_cases(data, bare):
    assert has_bare_lf(data) is bare


def test_assemble_trusts_a_crlf_caller_and_checks_otherwise():
    msg = b"Subject: x\r\n\r\nbody\nline\r\n"
    r = clean(msg)
    assert r.assemble(msg) == OUR_RECEIVED + b"Subject: x\r\n\r\nbody\r\nline\r\n"
    # crlf=True is the sender's promise (smtpd checked): the body goes as it is.
    assert r.assemble(msg, crlf=True) == OUR_RECEIVED + msg


header_line = st.one_of(
    st.binary(max_size=40),
    st.builds(lambda n, v: n + b": " + v, st.sampled_from(
        [b"Received", b"Message-ID", b"From", b"Return-Path", b"X-Y", b"Resent-To", b"Date"]),
        st.binary(max_size=30).filter(lambda v: b"\n" not in v and b"\r" not in v)),
    st.sampled_from([b"", b" cont", b"\tcont", b"Subject : x"]),
)


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(header_line, max_size=20), lf=st.booleans(), add=st.booleans())
def test_arbitrary_content_never_raises_and_is_stored_crlf(lines, lf, add):
    sep = b"\n" if lf else b"\r\n"
    content = sep.join(line.replace(b"\n", b"").replace(b"\r", b"") for line in lines)
    r = clean(content, add_missing=add, policy=HeaderPolicy(HOST, header_size_limit=50))
    out = r.assemble(content)
    assert out.startswith(OUR_RECEIVED)
    assert out.count(b"\n") == out.count(b"\r\n")
    assert out.endswith(to_crlf(content[r.body_offset:]))
    assert r.log_lines and all(line.count("message-id=") == 1 for line in r.log_lines)


@pytest.mark.parametrize("content", [FULL, BARE, FULL.replace(b"\r\n", b"\n")])
def test_clean_header_is_idempotent_on_its_own_output_apart_from_the_new_hop(content):
    once = stored(content, add_missing=True)
    r = clean(once, add_missing=True)
    assert r.assemble(once) == OUR_RECEIVED + once
    assert r.hop_count == 2
