"""lmtp - the LMTP delivery agent (Postfix lmtp(8)).

SYNOPSIS
    master.cf:  lmtp    unix  -  -  n  -  -  lmtp
    main.cf:    virtual_transport = lmtp:unix:private/dovecot-lmtp
                mailbox_transport = lmtp:unix:private/dovecot-lmtp
    transport:  example.com   lmtp:inet:127.0.0.1:24

DESCRIPTION
    The smtp delivery agent under another name, as Postfix's lmtp(8) is its
    smtp(8): qmgr hands it DeliverRequests on private/<transport>, and it
    delivers each over LMTP (RFC 2033) to the next hop: a UNIX-domain
    socket (unix:/path, or unix:private/name under $queue_directory) or a
    TCP server (inet:host:port, host:port, [host]:port, host; port
    $lmtp_tcp_port, 24, by default; no MX lookups). LHLO
    ($lmtp_lhlo_name), PIPELINING when offered, STARTTLS per
    $lmtp_tls_security_level, and after the message one reply per
    accepted recipient, each deciding that recipient. It reads the lmtp_*
    parameters (lmtp_lhlo_timeout, lmtp_data_done_timeout,
    lmtp_generic_maps, lmtp_header_checks, ...) where smtp reads smtp_*, whatever the master.cf service is called, and logs
    Postfix's status lines with tag $syslog_name/lmtp:

      QID: to=<u@example.com>, relay=mail.example.com[private/dovecot-lmtp],
           delay=0.03, delays=0.01/0.01/0/0.01, dsn=2.0.0,
           status=sent (250 2.0.0 <u@example.com> Saved)

    The work is mailsys.runtime.smtp_service's and smtp_agent's.
"""

from __future__ import annotations

from mailsys.runtime import smtp_service


def main() -> None:
    smtp_service.run("lmtp")


if __name__ == "__main__":
    main()
