"""error - accepted in master.cf for Postfix compatibility; serves nothing.

DESCRIPTION
    Postfix's error(8) agent bounces or defers the mail routed to the
    error and retry transports; mailsys's qmgr settles those itself
    (mailsys.qmgr.results), so the master.cf entry

        error     unix  -       -       y       -       -       error

    is accepted and nothing connects to it (mailsys.runtime.unused_service).
"""

from mailsys.runtime import unused_service


def main() -> None:
    unused_service.run("error", "qmgr settles the error and retry transports itself")


if __name__ == "__main__":
    main()
