"""postcat - one queue entry in the layout of Postfix's postcat -q.

SYNOPSIS
    from mailsys.admin.postcat import render, Sections
    data = render(envelope, queue, content, Sections(envelope=True, header=True, body=True))

DESCRIPTION
    Postfix's postcat prints a queue file record by record under section
    lines (postfix-compat.md 3.5):

        *** ENVELOPE RECORDS deferred/B/B69A620E28B ***
        message_size: ...                   six "%15ld" fields
        message_arrival_time: Fri Nov 27 00:22:23 2026
        ...  sender, named_attribute, original_recipient, recipient ...
        *** MESSAGE CONTENTS deferred/B/B69A620E28B ***
        ...  the header and body lines ...
        *** HEADER EXTRACTED deferred/B/B69A620E28B ***
        *** MESSAGE FILE END deferred/B/B69A620E28B ***

    mailsys keeps an entry as an envelope value and a content value in
    LMDB, not as a file of records, so this module writes the records
    Postfix would have written for the same envelope, in Postfix's order
    and with Postfix's record names (src/global/rec_type.h rec_type_name,
    mail_proto.h attribute names). The path shown is "queue/QID": there is
    no hashed subdirectory. In message_size the second field (Postfix's
    offset of the content in the file) is 0 and the fourth (qmgr options)
    is 0; the others are the content size, the recipient count, the content
    size again and the SMTPUTF8 flag. Recipients with a final state print
    as done_recipient, as Postfix marks delivered ones.

    Sections are chosen as with postcat -e (envelope, and the records
    extracted from headers), -h (header) and -b (body); with none chosen,
    all three. The section lines belong to the envelope: Postfix prints
    every one of them, "MESSAGE CONTENTS" included, only under -e
    (src/postcat/postcat.c prints each marker "if (flags &
    PC_FLAG_PRINT_ENV)"), so -e alone still shows MESSAGE CONTENTS right
    before HEADER EXTRACTED, and -h, -b or -hb print the bare text:
    "postcat -bq QID > file" saves the body as it is.

    The content is split into header and body at the first empty line.
    That line starts the body, as in postcat's state machine, where the
    first line that is neither a header nor a continuation switches to
    the body state and is printed only with -b: -h ends with the last
    header line and -b starts with the empty line. Pure: envelope and
    content in, bytes out.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from mailsys.frozen import frozen
from mailsys.message.envelope import Envelope, Notify

if TYPE_CHECKING:      # importing mailsys.queue would load lmdb
    from mailsys.queue.schema import Queue

SIZE_FORMAT = "%15d %15d %15d %15d %15d %15d"   # Postfix REC_TYPE_SIZE_FORMAT
# RFC 3461 NOTIFY and RET as Postfix numbers them (src/global/dsn_mask.h).
NOTIFY_BITS = {Notify.NEVER: 1, Notify.SUCCESS: 2, Notify.FAILURE: 4, Notify.DELAY: 8}
RET_CODES = {"FULL": 1, "HDRS": 2}


@frozen
class Sections:
    envelope: bool = True
    header: bool = True
    body: bool = True


def _asctime(when: float) -> str:
    return time.asctime(time.localtime(when))


def envelope_records(env: Envelope) -> list[str]:
    """The envelope records, one "name: value" line each."""
    out = [
        "message_size: " + SIZE_FORMAT % (env.size, 0, len(env.recipients), 0,
                                          env.size, int(env.smtputf8)),
        f"message_arrival_time: {_asctime(env.arrival_time)}",
        f"create_time: {_asctime(env.arrival_time)}",
        f"named_attribute: log_ident={env.log_ident or env.queue_id}",
        f"named_attribute: rewrite_context={env.rewrite_context}",
    ]
    # Postfix 3.7.11's postcat: "named_attribute: sasl_sender=<s+2Bq@y.example>"
    # between rewrite_context and sender.
    if env.sasl_sender:
        out.append(f"named_attribute: sasl_sender={env.sasl_sender}")
    out.append(f"sender: {env.sender}")
    attrs: list[tuple[str, str]] = []
    if env.client_name or env.client_addr:
        attrs += [("log_client_name", env.client_name),
                  ("log_client_address", env.client_addr),
                  ("log_client_port", str(env.client_port)),
                  ("log_message_origin", f"{env.client_name}[{env.client_addr}]")]
    if env.helo:
        attrs.append(("log_helo_name", env.helo))
    if env.protocol:
        attrs.append(("log_protocol_name", env.protocol))
    if env.client_name or env.client_addr:
        attrs += [("client_name", env.client_name),
                  ("reverse_client_name", env.client_name),
                  ("client_address", env.client_addr),
                  ("client_port", str(env.client_port))]
    if env.helo:
        attrs.append(("helo_name", env.helo))
    if env.protocol:
        attrs.append(("protocol_name", env.protocol))
    if env.sasl_method:
        attrs.append(("sasl_method", env.sasl_method))
    if env.sasl_user:
        attrs.append(("sasl_username", env.sasl_user))
    attrs += list(env.attrs)
    out += [f"named_attribute: {k}={v}" for k, v in attrs]
    if env.verp_delimiters:
        out.append(f"verp_delimiters: {env.verp_delimiters}")
    if env.envid:
        out.append(f"dsn_envid: {env.envid}")
    if env.ret in RET_CODES:
        out.append(f"dsn_ret: {RET_CODES[env.ret]}")
    for rcpt in env.recipients:
        if rcpt.orcpt:
            out.append(f"named_attribute: dsn_orig_rcpt={rcpt.orcpt}")
        if rcpt.notify:
            out.append(f"dsn_notify: {sum(NOTIFY_BITS[n] for n in set(rcpt.notify))}")
        out.append(f"original_recipient: {rcpt.orig or rcpt.address}")
        out.append(("done_recipient: " if rcpt.final else "recipient: ") + rcpt.address)
    return out


def split_content(content: bytes) -> tuple[bytes, bytes]:
    """(header lines, body lines) at the first empty line, which is the
    body's first line (postcat -b prints it, -h does not)."""
    if content.startswith((b"\r\n", b"\n")):
        return b"", content
    for sep in (b"\r\n\r\n", b"\n\n"):
        at = content.find(sep)
        if at >= 0:
            at += len(sep) // 2
            return content[:at], content[at:]
    return content, b""


def _lines(data: bytes) -> bytes:
    """data with CRLF line ends turned into LF and a final newline."""
    data = data.replace(b"\r\n", b"\n")
    return data if not data or data.endswith(b"\n") else data + b"\n"


def render(env: Envelope, queue: Queue, content: bytes, sections: Sections) -> bytes:
    """The postcat output for one entry."""
    where = f"{queue.value}/{env.queue_id}"
    out: list[bytes] = []

    def line(text: str) -> None:
        out.append(text.encode("utf-8", "surrogateescape") + b"\n")

    if sections.envelope:
        line(f"*** ENVELOPE RECORDS {where} ***")
        for record in envelope_records(env):
            line(record)
        line(f"*** MESSAGE CONTENTS {where} ***")
    if sections.header and sections.body:
        out.append(_lines(content))
    elif sections.header or sections.body:
        head, body = split_content(content)
        out.append(_lines(head if sections.header else body))
    if sections.envelope:
        line(f"*** HEADER EXTRACTED {where} ***")
        line(f"*** MESSAGE FILE END {where} ***")
    return b"".join(out)
