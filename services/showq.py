"""showq - accepted in master.cf for Postfix compatibility; serves nothing.

DESCRIPTION
    Postfix's mailq asks showq(8) for the queue listing; mailsys's
    mailq and postqueue -p read the queue store themselves, so the master.cf entry

        showq     unix  n       -       y       -       -       showq

    is accepted and nothing connects to it (mailsys.runtime.unused_service).
"""

from mailsys.runtime import unused_service


def main() -> None:
    unused_service.run("showq", "mailq reads the queue store itself")


if __name__ == "__main__":
    main()
