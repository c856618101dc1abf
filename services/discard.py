"""discard - accepted in master.cf for Postfix compatibility; serves nothing.

DESCRIPTION
    Postfix's discard(8) agent reports as sent and drops the mail
    routed to the discard transport; mailsys's qmgr settles that itself
    (mailsys.qmgr.results), so the master.cf entry

        discard   unix  -       -       y       -       -       discard

    is accepted and nothing connects to it (mailsys.runtime.unused_service).
"""

from mailsys.runtime import unused_service


def main() -> None:
    unused_service.run("discard", "qmgr settles the discard transport itself")


if __name__ == "__main__":
    main()
