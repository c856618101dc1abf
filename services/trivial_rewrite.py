"""trivial-rewrite - accepted in master.cf for Postfix compatibility; serves nothing.

DESCRIPTION
    Postfix's trivial-rewrite(8) rewrites and resolves addresses for
    the other daemons; mailsys's do that in process (mailsys.routing).
    master.cf names it trivial-rewrite, so the master.cf entry

        rewrite   unix  -       -       y       -       -       trivial-rewrite

    is accepted and nothing connects to it (mailsys.runtime.unused_service).
"""

from mailsys.runtime import unused_service


def main() -> None:
    unused_service.run("trivial-rewrite", "address rewriting and resolving are done in each process")


if __name__ == "__main__":
    main()
