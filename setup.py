"""Compile mailsys's busiest pure-Python modules to C with mypyc.

Everything else about the package is in setup.cfg. The modules in COMPILED
run for every command and every message in a service's own Python code
(the SMTP state machines); compiled, they take about half of their
interpreted time. They are still plain Python, which is what runs
where they cannot be compiled:

  - MAILSYS_PURE_PYTHON=1 in the environment asks for no compilation;
  - without a C compiler or the Python headers (Debian's python3-dev)
    nothing is compiled; the build says why on its standard error, which
    pip shows with -v.

A compiled module is a file beside its source
(mailsys/smtp/server.cpython-311-x86_64-linux-gnu.so) that Python imports
in the source's place: after a change to a module in COMPILED, `make venv`
builds it again (tests/conftest.py refuses to run the tests on a stale
one).
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig

from setuptools import setup
from setuptools.command.build_ext import build_ext

# One path a line (the Makefile reads them from here): the SMTP server
# and client state machines and what they import from their package,
# trace too, as it subclasses them (an interpreted class cannot). Each
# must pass mypy as MYPY_OPTIONS has it.
COMPILED = """
mailsys/smtp/_body.py
mailsys/smtp/_client_reply.py
mailsys/smtp/_extract_addr.py
mailsys/smtp/_grammar.py
mailsys/smtp/_params.py
mailsys/smtp/_state.py
mailsys/smtp/_xclient.py
mailsys/smtp/address.py
mailsys/smtp/client.py
mailsys/smtp/ehlo_mask.py
mailsys/smtp/errors.py
mailsys/smtp/events.py
mailsys/smtp/haproxy.py
mailsys/smtp/replies.py
mailsys/smtp/server.py
mailsys/smtp/settings.py
mailsys/smtp/trace.py
""".split()
# Compiled code checks annotations at run time and has its own semantics
# in corners (a float subclass becomes a plain float; a class takes no
# weak reference and no interpreted subclass), so a module joins COMPILED
# only when the whole test suite passes with it, and only for a gain
# measured in a running mailsys: most of the rest of the code spends its
# time in C already (re, str methods, orjson), where compiling gains a
# tenth or less.

MYPY_OPTIONS = ["--follow-imports=silent", "--ignore-missing-imports", "--no-incremental"]


def why_not_compiled() -> str | None:
    if os.environ.get("MAILSYS_PURE_PYTHON"):
        return "MAILSYS_PURE_PYTHON is set"
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return f"no C compiler ({cc})"
    if not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")):
        return "no Python.h (Debian: apt install python3-dev)"
    return None


def ext_modules() -> list:
    reason = why_not_compiled()
    if reason is not None:
        print(f"mailsys: not compiled with mypyc: {reason}; pure Python", file=sys.stderr)
        return []
    from mypyc.build import mypycify
    # The shared part of the compiled code goes in the package
    # (mailsys/native__mypyc...so), where services started with
    # `python -P -m` find it as they find the rest.
    return mypycify([*MYPY_OPTIONS, *COMPILED], opt_level="3", group_name="mailsys.native")


class BuildAlways(build_ext):
    """Compile every time: mypyc rewrites only the C files that changed, and
    a compiled module older than its source is taken for a stale one."""

    def finalize_options(self) -> None:
        super().finalize_options()
        self.force = True


setup(ext_modules=ext_modules(), cmdclass={"build_ext": BuildAlways})
