"""Fixtures for the logging tests: a real Config over a main.cf in a temp dir."""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path

import pytest
import structlog

from mailsys.config import load
from mailsys.maillog.writer import postlog_path

def write_config(root: Path, **params: str) -> Path:
    """root/etc/main.cf with the given parameters; returns the config dir."""
    etc = root / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    settings = {"queue_directory": "./var/queue", "maillog_file": "./var/log/mail.log",
                "maillog_file_prefixes": "./var",
                "myhostname": "mx.example.com", **params}
    (etc / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    return etc


@pytest.fixture
def short_root():
    # AF_UNIX paths are limited to 108 bytes; pytest's tmp_path can be longer.
    root = Path(tempfile.mkdtemp(prefix="ml", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def make_config(short_root):
    """make_config(**params) -> Config over short_root/etc/main.cf."""
    def make(**params: str):
        return load(write_config(short_root, **params))
    return make


@pytest.fixture
def cfg(make_config):
    return make_config()


@pytest.fixture(autouse=True)
def _reset_structlog():
    yield
    structlog.reset_defaults()



@pytest.fixture
def postlog(cfg):
    """A stand-in for the master's postlog socket: bound, never read by itself,
    so its queue fills after net.unix.max_dgram_qlen datagrams."""
    path = postlog_path(cfg)
    path.parent.mkdir(parents=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield sock
    sock.close()
