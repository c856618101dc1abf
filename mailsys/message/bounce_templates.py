"""bounce_templates - the text of delivery status notices: bounce(5) template files.

SYNOPSIS
    from mailsys.message.bounce_templates import DEFAULTS, parse_templates, expand_text

    templates = parse_templates(text, "/etc/mailsys/bounce.cf", warn)   # over DEFAULTS
    lines = expand_text(templates["failure"], lookup)    # $name expanded
    format_templates(templates)                # what postconf -t prints

DESCRIPTION
    A notice starts with a human-readable text and takes its From:,
    Subject: and (for postmaster copies) Postmaster-Subject: from a
    template. DEFAULTS are Postfix 3.7's built-in templates, word for word
    as its postconf -t prints them. bounce_template_file names a file in
    Postfix's bounce(5) format that replaces some of them:

        # comments and blank lines between templates
        failure_template = <<EOF
        Charset: us-ascii
        From: Mail Delivery System <MAILER-DAEMON>
        Subject: Undelivered Mail Returned to Sender
        Postmaster-Subject: Postmaster Copy: Undelivered Mail

        This is the mail system at host $myhostname.
        ...
        EOF

    The templates are failure, delay, success and verify; a header it
    leaves out keeps the built-in value; Postmaster-Subject belongs to
    failure and delay only. As Postfix, a template with an unknown header
    label, an inapplicable one, 8-bit text under charset us-ascii, or an
    unknown template name is ignored with a warning; a missing EOF is a
    warning and the template ends at the end of the file.

    expand_text() replaces $name and ${name} with main.cf values, $$ with
    $; a time parameter may carry a unit suffix, _seconds, _minutes,
    _hours, _days or _weeks ($delay_warning_time_hours). An unknown name
    is TemplateError, Postfix's "undefined $name in failure template: ...".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace

from mailsys.frozen import frozen

NAMES = ("failure", "delay", "success", "verify")

# Headers of a template, and the templates a postmaster copy exists for.
LABELS = {"charset": "charset", "from": "sender", "subject": "subject",
          "postmaster-subject": "postmaster_subject"}
WITH_POSTMASTER_COPY = ("failure", "delay")

TIME_UNITS = {"_seconds": 1, "_minutes": 60, "_hours": 3600, "_days": 86400, "_weeks": 604800}

_VARIABLE = re.compile(r"\$(?:\$|\{(\w+)\}|(\w+))")


class TemplateError(Exception):
    """A template refers to a name main.cf does not know."""


@frozen
class Template:
    name: str                       # failure, delay, success, verify
    charset: str
    sender: str                     # the From: text
    subject: str
    postmaster_subject: str         # "" for success and verify
    text: tuple[str, ...]


_FROM = "Mail Delivery System <MAILER-DAEMON>"
_HELP = ("For further assistance, please send mail to postmaster.",
         "",
         "If you do so, please include this problem report. You can",
         "delete your own text from the attached returned message.",
         "")
_SIGNATURE = "                   The mail system"
_HOST = ("This is the mail system at host $myhostname.", "")

DEFAULTS: dict[str, Template] = {
    "failure": Template(
        "failure", "us-ascii", _FROM, "Undelivered Mail Returned to Sender",
        "Postmaster Copy: Undelivered Mail",
        (*_HOST,
         "I'm sorry to have to inform you that your message could not",
         "be delivered to one or more recipients. It's attached below.",
         "",
         *_HELP,
         _SIGNATURE)),
    "delay": Template(
        "delay", "us-ascii", _FROM, "Delayed Mail (still being retried)",
        "Postmaster Warning: Delayed Mail",
        (*_HOST,
         "####################################################################",
         "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #",
         "####################################################################",
         "",
         "Your message could not be delivered for more than $delay_warning_time_hours hour(s).",
         "It will be retried until it is $maximal_queue_lifetime_days day(s) old.",
         "",
         *_HELP,
         _SIGNATURE)),
    "success": Template(
        "success", "us-ascii", _FROM, "Successful Mail Delivery Report", "",
        (*_HOST,
         "Your message was successfully delivered to the destination(s)",
         "listed below. If the message was delivered to mailbox you will",
         "receive no further notifications. Otherwise you may still receive",
         "notifications of mail delivery errors from other systems.",
         "",
         _SIGNATURE)),
    "verify": Template(
        "verify", "us-ascii", _FROM, "Mail Delivery Status Report", "",
        (*_HOST,
         "Enclosed is the mail delivery report that you requested.",
         "",
         _SIGNATURE)),
}


def parse_templates(text: str, file: str,
                    warn: Callable[[str], None]) -> dict[str, Template]:
    """The templates of a bounce(5) file over DEFAULTS; see DESCRIPTION."""
    found = dict(DEFAULTS)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    i = 0
    while i < len(lines):
        line = lines[i].rstrip("\r")
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.fullmatch(r"\s*(\w+)\s*=\s*<<\s*(\S+)\s*", line)
        if m is None:
            warn(f"{file}, line {i}: malformed template definition -- ignoring this line")
            continue
        key, marker = m.groups()
        body: list[str] = []
        while i < len(lines) and lines[i].rstrip("\r") != marker:
            body.append(lines[i].rstrip("\r"))
            i += 1
        # The line numbers are the ones Postfix's warnings give.
        if i >= len(lines):
            warn(f'{file}, line {i + 1}: missing "{marker}" end marker')
        i += 1
        name = key[:-len("_template")] if key.endswith("_template") else ""
        if name not in NAMES:
            warn(f"{file}, line {i + 1}: unknown template name: {key} -- ignoring this template")
            continue
        template = _template(name, body, file, warn)
        if template is not None:
            found[name] = template
    return found


def _template(name: str, body: list[str], file: str,
              warn: Callable[[str], None]) -> Template | None:
    fields: dict[str, str] = {}
    n = 0
    while n < len(body) and body[n].strip():
        label, colon, value = body[n].partition(":")
        attr = LABELS.get(label.strip().lower()) if colon else None
        if attr is None:
            warn(f'{file}: unknown "{label.strip()}" header label in {name} template'
                 " -- ignoring this template")
            return None
        if attr == "postmaster_subject" and name not in WITH_POSTMASTER_COPY:
            warn(f'{file}: inapplicable "{label.strip()}" header label in {name} template'
                 " -- ignoring this template")
            return None
        fields[attr] = value.strip()
        n += 1
    text = tuple(body[n + 1:] if n < len(body) else ())
    template = replace(DEFAULTS[name], **fields, text=text)
    if template.charset.lower() == "us-ascii" and not all(line.isascii() for line in text):
        warn(f"{file}: 8-bit message text in {name} template")
        warn("please specify a charset value other than us-ascii")
        warn("-- ignoring this template for now")
        return None
    return template


def expand_text(template: Template, lookup: Callable[[str], str | None],
                file: str = "") -> tuple[str, ...]:
    """The template's text with $name expanded (TemplateError for an unknown name)."""
    def one(line: str) -> str:
        def value(m: re.Match) -> str:
            name = m.group(1) or m.group(2)
            if name is None:
                return "$"
            found = lookup(name)
            if found is None:
                where = f"{file}: " if file else ""
                raise TemplateError(f"{where}undefined $name in {template.name} template: {line}")
            return found
        return _VARIABLE.sub(value, line)
    return tuple(one(line) for line in template.text)


def config_lookup(cfg, param_type: Callable[[str], str | None]) -> Callable[[str], str | None]:
    """lookup(name) for expand_text over a Config: a parameter's value, or a
    time parameter in the unit its suffix names. param_type(name) is the
    parameter's type name ("Time", "Int", ...) or None for no such parameter."""
    def lookup(name: str) -> str | None:
        for suffix, unit in TIME_UNITS.items():
            base = name[:-len(suffix)]
            if name.endswith(suffix) and param_type(base) == "Time":
                return str(int(cfg[base]) // unit)
        if param_type(name) is None:
            return None
        return cfg.expand(cfg.raw(name))
    return lookup


def format_templates(templates: Mapping[str, Template]) -> str:
    """The templates in bounce(5) form, as postconf -t prints them."""
    blocks = []
    for name in NAMES:
        t = templates[name]
        head = [f"{name}_template = <<EOF", f"Charset: {t.charset}", f"From: {t.sender}",
                f"Subject: {t.subject}"]
        if name in WITH_POSTMASTER_COPY:
            head.append(f"Postmaster-Subject: {t.postmaster_subject}")
        blocks.append("\n".join([*head, "", *t.text, "EOF"]) + "\n")
    return "\n".join(blocks)


def format_expanded(templates: Mapping[str, Template], lookup: Callable[[str], str | None],
                    file: str = "") -> str:
    """The expanded texts, as postconf -b prints them."""
    blocks = [f"expanded_{name}_text = <<EOF\n"
              + "".join(line + "\n" for line in expand_text(templates[name], lookup, file))
              + "EOF\n" for name in NAMES]
    return "\n".join(blocks)


__all__ = ["DEFAULTS", "NAMES", "Template", "TemplateError", "config_lookup", "expand_text",
           "format_expanded", "format_templates", "parse_templates"]
