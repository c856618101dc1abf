"""smtpd and smtp load pyOpenSSL and dnspython only when the configuration needs them.

Each check runs a fresh interpreter that does what the service's start-up
does (services.smtpd.setup builds SmtpdServer.from_config; services.smtp
builds its _State) and reports which of those libraries are in sys.modules:
an earlier import in the test process would hide a regression.
"""

from __future__ import annotations

import json
import subprocess
import sys

import trustme

_PROBE = r"""
import json, sys, types
from pathlib import Path
from mailsys.config import load
import services.smtpd, services.smtp
cfg = load(Path(sys.argv[1]))
server = services.smtpd.setup(types.SimpleNamespace(config=cfg, service="smtp", type="inet"))
services.smtp._State(types.SimpleNamespace(config=cfg))
heavy = ("OpenSSL", "cryptography", "dns", "mailsys.tls")
loaded = sorted({m.split(".")[0] if m != "mailsys.tls" else m for m in sys.modules
                 if m.startswith(heavy) and (m == "mailsys.tls" or not m.startswith("mailsys"))})
print("LOADED " + json.dumps({"modules": loaded, "starttls": server.base_settings.starttls}))
"""


def _probe(tmp_path, queue_dir, **params) -> dict:
    values = {"queue_directory": str(queue_dir), "myhostname": "mx.example.test",
              "myorigin": "example.test", "smtpd_peername_lookup": "no",
              "relayhost": "[127.0.0.1]:2525", **params}
    (tmp_path / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in values.items()))
    out = subprocess.run([sys.executable, "-c", _PROBE, str(tmp_path)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    line = next(l for l in out.stdout.splitlines() if l.startswith("LOADED "))
    return json.loads(line[len("LOADED "):])


def test_no_tls_no_dns_loads_neither(tmp_path, queue_dir):
    found = _probe(tmp_path, queue_dir, smtp_dns_support_level="disabled")
    assert found == {"modules": [], "starttls": False}


def test_a_certificate_and_a_dns_restriction_load_them(tmp_path, queue_dir):
    cert = trustme.CA().issue_cert("mx.example.test")
    pem = tmp_path / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    found = _probe(tmp_path, queue_dir, smtpd_tls_security_level="may",
                   smtpd_tls_chain_files=str(pem),
                   smtp_tls_security_level="may",
                   smtpd_sender_restrictions="reject_unknown_sender_domain")
    assert found["starttls"] is True
    assert {"OpenSSL", "cryptography", "dns", "mailsys.tls"} <= set(found["modules"])
