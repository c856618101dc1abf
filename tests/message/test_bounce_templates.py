"""bounce(5) template files: parsing, expansion, the notices they give, postconf -t and -b."""

import shutil
import subprocess
import sys
from dataclasses import replace

import pytest

from mailsys.config import load
from mailsys.message.bounce_templates import (DEFAULTS, TemplateError, config_lookup, expand_text,
                                              format_templates, parse_templates)
from mailsys.message.dsn import Kind, NoticeSettings, build_notice, param_type
from mailsys.message.envelope import Envelope, RcptState, Recipient

CUSTOM = """# site bounces
failure_template = <<EOF
Charset: utf-8
From: Postmaster <postmaster@example.com>
Subject: Nicht zustellbar

Hallo von $myorigin: nach ${maximal_queue_lifetime_days} Tagen / $maximal_queue_lifetime_hours h.
Kosten $$5, Grenze $bounce_size_limit.
EOF

delay_template = <<EOF
Subject: Still trying

Waited $delay_warning_time_minutes minutes.
EOF
"""


def parsed(text, warnings=None):
    return parse_templates(text, "/etc/bounce.cf", (warnings if warnings is not None else []).append)


def test_a_file_replaces_the_templates_it_has_and_keeps_the_other_fields():
    t = parsed(CUSTOM)
    assert (t["failure"].charset, t["failure"].sender, t["failure"].subject) == (
        "utf-8", "Postmaster <postmaster@example.com>", "Nicht zustellbar")
    assert t["failure"].postmaster_subject == DEFAULTS["failure"].postmaster_subject
    assert t["delay"].sender == DEFAULTS["delay"].sender
    assert t["delay"].text == ("Waited $delay_warning_time_minutes minutes.",)
    assert t["success"] == DEFAULTS["success"]


# The warnings Postfix 3.7.11's postconf -t printed for the same files.
@pytest.mark.parametrize("text, warning", [
    ("failure_template = <<EOF\nBogus: x\n\ntext\nEOF\n",
     '/etc/bounce.cf: unknown "Bogus" header label in failure template -- ignoring this template'),
    ("success_template = <<EOF\nPostmaster-Subject: x\n\ntext\nEOF\n",
     '/etc/bounce.cf: inapplicable "Postmaster-Subject" header label in success template'
     " -- ignoring this template"),
    ("bogus_template = <<EOF\nSubject: x\n\ntext\nEOF\n",
     "/etc/bounce.cf, line 6: unknown template name: bogus_template -- ignoring this template"),
    ("failure_template = <<EOF\nSubject: x\n\nt\u00e9xt\nEOF\n",
     "/etc/bounce.cf: 8-bit message text in failure template"),
])
def test_a_bad_template_is_ignored_with_postfixs_warning(text, warning):
    warnings = []
    assert parsed(text, warnings) == DEFAULTS
    assert warnings[0] == warning


def test_a_missing_end_marker_ends_the_template_at_the_end_of_the_file():
    warnings = []
    t = parsed("failure_template = <<EOF\nSubject: x\n\ntext\n", warnings)
    assert warnings == ['/etc/bounce.cf, line 5: missing "EOF" end marker']
    assert t["failure"].text == ("text",)


def test_expansion(tmp_path):
    (tmp_path / "main.cf").write_text("myorigin = example.com\nmaximal_queue_lifetime = 3d\n"
                                      "delay_warning_time = 2h\n")
    lookup = config_lookup(load(tmp_path), param_type)
    t = parsed(CUSTOM)
    assert expand_text(t["failure"], lookup) == (
        "Hallo von example.com: nach 3 Tagen / 72 h.", "Kosten $5, Grenze 50000.")
    assert expand_text(t["delay"], lookup) == ("Waited 120 minutes.",)
    unknown = replace(t["delay"], text=("x $nosuchparam",))
    with pytest.raises(TemplateError,
                       match=r"^/etc/bounce.cf: undefined \$name in delay template: x \$nosuchparam$"):
        expand_text(unknown, lookup, "/etc/bounce.cf")


def bounced_envelope():
    return Envelope(queue_id="4jbfQp2KW5z04VZ", sender="alice@example.com", arrival_time=1.0e9,
                    recipients=(Recipient("bob@remote.example", state=RcptState.BOUNCED,
                                          dsn_status="5.1.1", reason="unknown"),))


def test_a_notice_from_a_template_file(tmp_path):
    (tmp_path / "bounce.cf").write_text(CUSTOM)
    (tmp_path / "main.cf").write_text(f"myorigin = example.com\nmyhostname = mx.example.com\n"
                                      f"bounce_template_file = {tmp_path}/bounce.cf\n")
    settings = NoticeSettings.from_config(load(tmp_path))
    env = bounced_envelope()
    notice = build_notice(Kind.FAILURE, env, b"Subject: hi\r\n\r\nbody\r\n", env.recipients,
                          settings, now=1.0e9).decode()
    assert "\r\nFrom: Postmaster <postmaster@example.com>\r\nSubject: Nicht zustellbar\r\n" in notice
    assert ("Content-Type: text/plain; charset=utf-8\r\n\r\n"
            "Hallo von example.com: nach 5 Tagen / 120 h.\r\nKosten $5, Grenze 50000.\r\n"
            "\r\n<bob@remote.example>: unknown\r\n") in notice


def test_the_built_in_from_is_qualified_with_myorigin(tmp_path):
    (tmp_path / "main.cf").write_text("myorigin = example.com\n")
    env = bounced_envelope()
    notice = build_notice(Kind.FAILURE, env, b"Subject: hi\r\n\r\nbody\r\n", env.recipients,
                          NoticeSettings.from_config(load(tmp_path)), now=1.0e9)
    assert b"\r\nFrom: Mail Delivery System <MAILER-DAEMON@example.com>\r\n" in notice


def test_an_unknown_name_keeps_notices_going_with_the_built_in_template(tmp_path):
    (tmp_path / "bounce.cf").write_text("failure_template = <<EOF\nSubject: x\n\n$nope\nEOF\n")
    (tmp_path / "main.cf").write_text(f"bounce_template_file = {tmp_path}/bounce.cf\n")
    warnings = []
    settings = NoticeSettings.from_config(load(tmp_path), warn=warnings.append)
    assert settings.templates["failure"] == DEFAULTS["failure"]
    assert warnings == [f"{tmp_path}/bounce.cf: undefined $name in failure template: $nope"
                        " -- using the built-in failure template"]


def test_postconf_t_prints_the_built_in_templates():
    assert format_templates(DEFAULTS).startswith(
        "failure_template = <<EOF\nCharset: us-ascii\nFrom: Mail Delivery System <MAILER-DAEMON>\n")


def mailsys_postconf(*args):
    return subprocess.run([sys.executable, "-m", "mailsys.cli.main", *args],
                          capture_output=True, text=True, timeout=30)


def test_postconf_b_refuses_an_unknown_name(tmp_path):
    (tmp_path / "main.cf").write_text("")
    (tmp_path / "bounce.cf").write_text("failure_template = <<EOF\nSubject: x\n\n$nope\nEOF\n")
    r = mailsys_postconf("-c", str(tmp_path), "postconf", "-b", str(tmp_path / "bounce.cf"))
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == (f"postconf: fatal: {tmp_path}/bounce.cf: undefined $name in failure "
                        "template: $nope\n")


@pytest.mark.skipif(shutil.which("postconf") is None, reason="Postfix is not installed")
@pytest.mark.parametrize("option", ["-t", "-b"])
def test_postconf_t_and_b_are_postfixs(tmp_path, option):
    (tmp_path / "main.cf").write_text("compatibility_level = 3.6\nmyhostname = mx.example.com\n"
                                      "maximal_queue_lifetime = 3d\n")
    (tmp_path / "master.cf").write_text("")
    (tmp_path / "bounce.cf").write_text(CUSTOM.replace("Charset: utf-8", "Charset: us-ascii")
                                        .replace("Hallo", "Hello"))
    for args in ([], [str(tmp_path / "bounce.cf")]):
        ours = mailsys_postconf("-c", str(tmp_path), "postconf", option, *args)
        theirs = subprocess.run(["postconf", "-c", str(tmp_path), option, *args],
                                capture_output=True, text=True, timeout=30)
        assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), args
