"""The renderers are pure: importing them pulls in no sockets, trio, ssl, lmdb or structlog."""

import subprocess
import sys


def test_renderers_import_nothing_impure():
    code = ("import sys, mailsys.maillog.postfix, mailsys.maillog.jsonl, mailsys.maillog.event;"
            "print(sorted(m for m in ('socket', 'trio', 'ssl', 'lmdb', 'structlog') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
