"""scache - accepted in master.cf for Postfix compatibility; serves nothing.

DESCRIPTION
    Postfix's scache(8) shares open SMTP connections between smtp
    processes; mailsys's smtp agent keeps its own connection cache, so the master.cf entry

        scache    unix  -       -       y       -       1       scache

    is accepted and nothing connects to it (mailsys.runtime.unused_service).
"""

from mailsys.runtime import unused_service


def main() -> None:
    unused_service.run("scache", "the smtp agent caches its own connections")


if __name__ == "__main__":
    main()
