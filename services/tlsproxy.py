"""tlsproxy - accepted in master.cf for Postfix compatibility; serves nothing.

DESCRIPTION
    Postfix's postscreen asks tlsproxy(8) for STARTTLS inside its own SMTP
    dialogue; mailsys's postscreen offers no STARTTLS there (a client that
    passes gets it from smtpd), so the master.cf entry

        tlsproxy  unix  -       -       n       -       0       tlsproxy

    is accepted and nothing connects to it (mailsys.runtime.unused_service).
"""

from mailsys.runtime import unused_service


def main() -> None:
    unused_service.run("tlsproxy", "postscreen offers no STARTTLS before smtpd")


if __name__ == "__main__":
    main()
