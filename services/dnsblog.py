"""dnsblog - accepted in master.cf for Postfix compatibility; serves nothing.

DESCRIPTION
    Postfix's postscreen asks dnsblog(8) for its DNSBL lookups; mailsys's
    postscreen does them itself, so the master.cf entry

        dnsblog   unix  -       -       n       -       0       dnsblog

    is accepted and nothing connects to it (mailsys.runtime.unused_service).
"""

from mailsys.runtime import unused_service


def main() -> None:
    unused_service.run("dnsblog", "postscreen does its DNS lookups itself")


if __name__ == "__main__":
    main()
