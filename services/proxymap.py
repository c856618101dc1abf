"""proxymap - accepted in master.cf for Postfix compatibility; serves nothing.

DESCRIPTION
    Postfix's proxymap(8) opens tables for chrooted daemons (proxy:
    maps) and serves proxywrite; mailsys's daemons open their tables
    themselves, so the master.cf entry

        proxymap  unix  -       -       n       -       -       proxymap

    is accepted and nothing connects to it (mailsys.runtime.unused_service).
"""

from mailsys.runtime import unused_service


def main() -> None:
    unused_service.run("proxymap", "every process opens its tables itself")


if __name__ == "__main__":
    main()
