"""The whole suite: refuse to test compiled modules older than their source.

setup.py compiles some modules with mypyc into a file beside the source,
which Python imports in the source's place. After a change to such a
source, the tests would run the old compiled code: `make venv` (which
`make test` runs first) builds it again.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mailsys"


def stale_compiled(package: Path = PACKAGE) -> list[str]:
    """Sources changed since their compiled module was built."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    compiled = list(package.rglob(f"*{suffix}"))
    # Each module's file is a stub; the code is in the shared library
    # (mailsys/native__mypyc...so): the older of the two says when.
    shared = min((c.stat().st_mtime for c in compiled if "__mypyc" in c.name), default=None)
    stale = []
    for module in compiled:
        source = module.with_name(module.name[:-len(suffix)] + ".py")
        built = module.stat().st_mtime if shared is None else min(module.stat().st_mtime, shared)
        if source.exists() and source.stat().st_mtime > built:
            stale.append(str(source.relative_to(package.parent)))
    return sorted(stale)


def pytest_sessionstart(session: pytest.Session) -> None:
    stale = stale_compiled()
    if stale:
        pytest.exit(f"compiled modules older than their source ({', '.join(stale)}): "
                    "run `make venv` to build them again", returncode=4)
