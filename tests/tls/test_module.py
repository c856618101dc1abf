"""mailsys.tls stays sans-IO; random bytes from a peer only ever raise TlsError."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

import mailsys.tls
from mailsys.tls import TlsEngine, TlsError, client_context, server_context
from tls_helpers import pump

ROOT = Path(__file__).resolve().parents[2]


def test_tls_imports_no_trio_or_ssl():
    probe = ("import json, sys, mailsys.tls\n"
             "print(json.dumps(sorted(m for m in ('trio', 'ssl', 'lmdb') if m in sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert json.loads(out) == []
    tree = ast.parse((ROOT / "mailsys" / "tls.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"trio", "socket", "ssl", "lmdb"}


def test_exported_names_exist():
    for name in mailsys.tls.__all__:
        assert hasattr(mailsys.tls, name), name


# The Config fixture is read-only, so sharing it between examples is safe.
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=4))
def test_junk_during_the_handshake_raises_only_tls_error(tls_cfg, junk):
    server = TlsEngine(server_context(tls_cfg), server_side=True)
    try:
        for piece in junk:
            out, done = server.handshake_step(piece)
            assert isinstance(out, bytes) and not done
    except TlsError as e:
        assert e.reason


# The Config fixture is read-only, so sharing it between examples is safe.
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.binary(min_size=1, max_size=2000))
def test_junk_after_the_handshake_raises_only_tls_error(tls_cfg, junk):
    server = TlsEngine(server_context(tls_cfg), server_side=True)
    client = TlsEngine(client_context(tls_cfg, "may"), server_side=False)
    pump(client, server)
    try:
        plain, out = server.decrypt(junk)
    except TlsError as e:
        assert e.reason
    else:
        assert plain == b""          # nothing forged decrypts to data
