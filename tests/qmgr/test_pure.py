"""The scheduler's decisions are pure: importing them loads no I/O library."""

import json
import subprocess
import sys
from pathlib import Path

PURE = ["mailsys.qmgr.settings", "mailsys.qmgr.backoff", "mailsys.qmgr.schedule",
        "mailsys.qmgr.results", "mailsys.qmgr.clog"]
BANNED = ["trio", "socket", "ssl", "OpenSSL", "lmdb"]


def test_pure_qmgr_modules_import_no_io():
    probe = ("import importlib, json, sys\n"
             f"for m in {PURE!r}: importlib.import_module(m)\n"
             f"print(json.dumps(sorted(b for b in {BANNED!r} if b in sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", probe], cwd=Path(__file__).parents[2],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert json.loads(out) == []
