"""cleanup_inspect - cleanup's half of smtpd_milters: the message as cleanup stored it.

SYNOPSIS
    inspector = MilterInspector.from_config(cfg)           # once per cleanup process
    found = await inspector.inspect(req, fds, content, received_at=len(req.prepend))
    found = await run(session, macros, content, received_at)     # non_smtpd_milters

DESCRIPTION
    Postfix's smtpd runs the connect, HELO, MAIL, RCPT and DATA events of
    its milters, then hands each milter's connection to cleanup with the
    message (milter8_send(), milter8_receive()), and cleanup runs the
    header, body and end-of-message events on the message as it wrote it:
    after header_checks, the rewriting of header addresses (canonical
    maps, masquerading) and the Message-Id:, Date:, From: it adds. So a
    DKIM signer signs what is delivered, and a milter sees header_checks'
    REPLACE and PREPEND results.

    This is that step for mailsys's cleanup. The connections come as
    descriptors with the CleanupRequest (one per CleanupMilter, in order),
    with the conversation's negotiated state; the macros are the values
    smtpd worked out for cleanup's stage (CleanupRequest milter_macros).
    The milters see the stored header without cleanup's own Received:
    header (which Postfix 3.7 does not show them either, seen live), then
    the body, and each milter's changes go to the next
    (mailsys.runtime.milter MilterSession.message). Headers a milter adds,
    inserts or changes go through milter_header_checks, never
    header_checks, as in Postfix 3.7 (cleanup_milter.c).

    The Received: header goes back where it was: after the headers above
    it (smtpd's PREPEND lines), so a header a milter inserts at index 0
    lands above it, as with Postfix (seen live, 3.7.11).

    Cleanup closes its copies of the connections afterwards without a
    word to the milters: smtpd holds the same connections and goes on
    with the session (SMFIC_ABORT, the next MAIL), as Postfix's does. A
    milter that fails here (times out, hangs up, breaks the protocol) is
    logged and answered with its default_action as at any other stage,
    and reported in Inspected.failed so that smtpd gives it up too.

    run() is the same step for a session of cleanup's own, the
    non_smtpd_milters of mail submitted with sendmail
    (mailsys.runtime.cleanup_milters), as Postfix's cleanup runs those on
    the message it wrote too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog

from mailsys.frozen import frozen
from mailsys.ipc.proto.cleanup import CleanupRequest
from mailsys.message.header_checks import ContentAction
from mailsys.milter.edits import Header, MilterMessage, strip_brackets
from mailsys.runtime.milter import MilterSession, MilterSettings
from mailsys.smtp import Reply

log = structlog.get_logger()


@frozen
class Inspected:
    """What the milters made of a message (see the module description)."""
    refusal: Reply | None             # a milter refused the message
    content: bytes | None             # the new stored content; None: unchanged
    sender: str | None                # SMFIR_CHGFROM, else None
    added: tuple[str, ...]            # SMFIR_ADDRCPT addresses
    deleted: frozenset[str]           # SMFIR_DELRCPT addresses, lower case
    hold: bool
    discard: bool
    checks: tuple[ContentAction, ...]     # milter_header_checks findings
    failed: tuple[int, ...]           # CleanupRequest.milters that failed here


class MilterInspector:
    def __init__(self, settings: MilterSettings) -> None:
        self.settings = settings

    @classmethod
    def from_config(cls, cfg: Any) -> "MilterInspector":
        # No milters of its own: only milter_header_checks and the host name.
        return cls(MilterSettings.from_config(cfg, "smtpd_milters", items=()))

    async def inspect(self, req: CleanupRequest, fds: list[int], content: bytes,
                      received_at: int) -> Inspected:
        """smtpd's milters (req.milters, whose descriptors fds this now
        owns) on content, the message as stored, whose header received_at
        is cleanup's own Received: header."""
        taken = fds[:]
        fds.clear()
        session = MilterSession.adopted(self.settings, req.milters, taken,
                                        dict(req.milter_macro_defaults))
        try:
            return await run(session, dict(req.milter_macros), content, received_at)
        finally:
            await session.release()


async def run(session: MilterSession, macros: Mapping[str, str | None], content: bytes,
              received_at: int) -> Inspected:
    """The header, body and end of message of content (the message as
    stored, whose header received_at is cleanup's own Received: header)
    to session's milters: what they made of it."""
    msg = MilterMessage.parse(content)
    headers = list(msg.headers)
    received = headers.pop(received_at) if received_at < len(headers) else None
    try:
        outcome = await session.message(MilterMessage(tuple(headers), msg.body), macros)
    finally:
        failed = session.failed_indexes
    verdict, env = outcome.verdict, outcome.envelope
    if verdict is not None and verdict.kind == "reply":
        return Inspected(verdict.reply, None, None, (), frozenset(), False, False,
                         outcome.checks, failed)
    new = None
    if outcome.changed:
        out = list(outcome.message.headers)
        if received is not None:
            out.insert(_received_place(out, received_at), received)
        new = MilterMessage(tuple(out), outcome.message.body).content()
    return Inspected(
        None, new,
        strip_brackets(env.sender.address) if env.sender is not None else None,
        tuple(strip_brackets(a.address) for a in env.added),
        frozenset(strip_brackets(a).lower() for a in env.deleted),
        env.quarantine is not None or (verdict is not None and verdict.kind == "hold"),
        verdict is not None and verdict.kind == "discard",
        outcome.checks, failed)


def _received_place(headers: list[Header], above: int) -> int:
    """Where cleanup's Received: header goes back: before the first header
    that was below it (the one after the `above` headers that were over
    it, counting none a milter added), else after the last one there was."""
    seen = 0
    last = 0
    for i, h in enumerate(headers):
        if h.added:
            continue
        if seen == above:
            return i
        seen += 1
        last = i + 1
    return last


__all__ = ["Inspected", "MilterInspector", "run"]
