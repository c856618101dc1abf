"""smtpd_tls - smtpd's side of a TLS handshake: after STARTTLS, or at connect in wrapper mode.

SYNOPSIS
    result = await server_handshake(stream, server, namaddr=..., addr=..., exempt=False)
    result.stream          # the TlsStream, or None: the session ends
    result.received        # the "(using TLSv1.3 with cipher ...)" lines for Received:
    result.refused         # True when we closed on purpose (limits, client certificate)

DESCRIPTION
    Runs the handshake with mailsys.runtime.tls_stream under
    smtpd_starttls_timeout and then applies what Postfix's smtpd checks
    right after it: the anvil new-TLS-session rate for a session that was
    not resumed ("421 4.7.0 <host> Error: too many new TLS sessions from
    <namaddr>"), and with smtpd_tls_req_ccert at mandatory TLS a client
    certificate ("421 4.7.1 <host> Error: No client certificate presented",
    logged "NOQUEUE: abort: TLS from <namaddr>: No client certificate
    presented"). With smtpd_tls_loglevel >= 1 it logs "Anonymous TLS
    connection established from <namaddr>: TLSv1.3 with cipher ...". A
    failed handshake is logged as "SSL_accept error from <namaddr>: <why>".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
import trio

from mailsys.frozen import frozen
from mailsys.ipc.proto import anvil as anvil_proto
from mailsys.message.received import TlsInfo, tls_lines as received_tls_lines
from mailsys.policy import anvil as limits
from mailsys.runtime.tls_stream import TlsStream
from mailsys.smtp import Reply
from mailsys.tls import TlsEngine, TlsError, describe, established_text, sni_note_text

if TYPE_CHECKING:
    from mailsys.runtime.smtpd_server import SmtpdServer

log = structlog.get_logger()

# A refusal after the handshake is a courtesy to a client that may not read.
FAREWELL_TIMEOUT = 1.0


@frozen
class Handshake:
    stream: TlsStream | None
    received: str = ""
    refused: bool = False
    info: TlsInfo | None = None       # protocol and cipher (milters' TLS macros)


async def server_handshake(stream: trio.abc.Stream, server: "SmtpdServer", *, namaddr: str,
                           addr: str, exempt: bool) -> Handshake:
    tls = TlsStream(stream, TlsEngine(server.tls_context, server_side=True))
    try:
        await tls.handshake(server.starttls_timeout)
    except TlsError as e:
        _log_sni_note(tls.engine, namaddr)
        log.info(f"SSL_accept error from {namaddr}: {e}")
        with trio.move_on_after(FAREWELL_TIMEOUT, shield=True):
            await tls.aclose()
        return Handshake(None)
    engine = tls.engine
    if server.limits.new_tls_session_rate and not exempt and not engine.session_reused:
        rate = await server.anvil.event(server.service, addr, anvil_proto.NEWTLS)
        hit = limits.check_new_tls(rate, server.limits, service=server.service,
                                   namaddr=namaddr, myhostname=server.cfg.myhostname)
        if hit is not None:
            log.warning(hit.warning)
            return await _refuse(tls, Reply(hit.reply.code, hit.reply.enhanced, hit.reply.text))
    _log_sni_note(engine, namaddr)
    if server.tls_loglevel >= 1:
        log.info(established_text(engine, namaddr))
    if server.require_client_cert and engine.peer_certificate is None:
        log.info(f"abort: TLS from {namaddr}: No client certificate presented", noqueue=True)
        return await _refuse(tls, Reply(421, "4.7.1", f"{server.cfg.myhostname} Error: "
                                        "No client certificate presented"))
    # cleanup puts these lines after the first line of its Received: header;
    # the restrictions, the policy service and the milters read the rest.
    info = describe(engine, digest=server.cfg.smtpd_tls_fingerprint_digest)
    received = "\n".join(received_tls_lines(info)) if server.tls_received_header else ""
    return Handshake(tls, received, info=info)


def _log_sni_note(engine: TlsEngine, namaddr: str) -> None:
    """What the tls_server_sni_maps lookup found amiss, as Postfix logs it
    (during the handshake: before its outcome)."""
    note = sni_note_text(engine, namaddr)
    if note is not None:
        level, text = note
        (log.warning if level == "warning" else log.info)(text)


async def _refuse(tls: TlsStream, reply: Reply) -> Handshake:
    with trio.move_on_after(FAREWELL_TIMEOUT):
        try:
            await tls.send_all(reply.render())
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
    return Handshake(None, refused=True)
