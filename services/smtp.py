"""smtp - the outbound delivery agent (Postfix smtp(8)).

SYNOPSIS
    master.cf:  smtp    unix  -  -  n  -  -  smtp
                relay   unix  -  -  n  -  -  smtp

DESCRIPTION
    qmgr connects to $queue_directory/private/<transport> and sends
    DeliverRequest frames; for each one this daemon delivers the message
    to the request's next hop over SMTP and answers with a result for
    every recipient: MX lookup, loop detection, EHLO, STARTTLS per
    $smtp_tls_security_level, PIPELINING, per-stage timeouts and a
    connection cache (mailsys.runtime.smtp_service, shared with lmtp),
    and on the way out $smtp_generic_maps and the restricted
    $smtp_header_checks, $smtp_mime_header_checks,
    $smtp_nested_header_checks and $smtp_body_checks
    (mailsys.message.smtp_output).
    Each recipient's result is logged as Postfix's status line, tag
    $syslog_name/smtp.
"""

from __future__ import annotations

from mailsys.runtime import smtp_service


def _State(ctx) -> smtp_service.AgentState:
    return smtp_service.AgentState(ctx, "smtp")


def main() -> None:
    smtp_service.run("smtp")


if __name__ == "__main__":
    main()
