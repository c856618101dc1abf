"""Fixtures for the TLS tests: trustme certificates on disk and Configs that name them.

One CA signs a server certificate for mx.example.test, localhost and
127.0.0.1 and a client certificate; a second, unrelated CA stands for
"a CA the client does not know". Each test gets its own config dir under
tmp_path, so tests run side by side.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trustme

from mailsys.config import load

# tls_helpers.py sits beside the tests (tests/ is not a package).
sys.path.insert(0, str(Path(__file__).parent))

SERVER_NAMES = ("mx.example.test", "localhost", "127.0.0.1")


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def other_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def pki(tmp_path: Path, ca: trustme.CA, other_ca: trustme.CA) -> dict[str, Path]:
    """PEM files: server cert+key (and separately), client cert+key, both CAs."""
    d = tmp_path / "pki"
    d.mkdir()
    server = ca.issue_cert(*SERVER_NAMES, common_name="mx.example.test")
    client = ca.issue_cert("client.example.test", common_name="client.example.test")
    files = {
        "server": d / "server.pem",           # key + certificate chain in one file
        "server_cert": d / "server-cert.pem",
        "server_key": d / "server-key.pem",
        "client": d / "client.pem",
        "ca": d / "ca.pem",
        "other_ca": d / "other-ca.pem",
    }
    server.private_key_and_cert_chain_pem.write_to_path(str(files["server"]))
    for i, blob in enumerate(server.cert_chain_pems):
        blob.write_to_path(str(files["server_cert"]), append=i > 0)
    server.private_key_pem.write_to_path(str(files["server_key"]))
    client.private_key_and_cert_chain_pem.write_to_path(str(files["client"]))
    ca.cert_pem.write_to_path(str(files["ca"]))
    other_ca.cert_pem.write_to_path(str(files["other_ca"]))
    return files


@pytest.fixture
def make_cfg(tmp_path: Path):
    """make_cfg(name=value, ...) -> Config over a fresh main.cf."""
    counter = iter(range(1000))

    def make(**params: str):
        etc = tmp_path / f"etc{next(counter)}"
        etc.mkdir()
        (etc / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in params.items()))
        return load(etc)

    return make


@pytest.fixture
def tls_cfg(make_cfg, pki):
    """A Config with a server certificate and the right CA for the client."""
    return make_cfg(smtpd_tls_cert_file=pki["server"], smtp_tls_CAfile=pki["ca"])
