"""tlsmgr - accepted in master.cf for Postfix compatibility; serves nothing.

DESCRIPTION
    Postfix's tlsmgr(8) keeps the TLS session caches and the PRNG seed;
    mailsys's TLS code keeps its session state in each process, so the master.cf entry

        tlsmgr   unix  -       -       y       1000?   1       tlsmgr

    is accepted and nothing connects to it (mailsys.runtime.unused_service).
"""

from mailsys.runtime import unused_service


def main() -> None:
    unused_service.run("tlsmgr", "TLS session caches live in each process")


if __name__ == "__main__":
    main()
