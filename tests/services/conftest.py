"""Helpers for the in-process service tests: a config and a queue directory."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from mailsys.config import load


@pytest.fixture
def queue_dir():
    """A short directory under /tmp: Unix socket paths must fit in 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="msq", dir="/tmp"))
    (path / "public").mkdir()
    (path / "private").mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_config(tmp_path, queue_dir):
    """make_config(**params) -> Config with queue_directory and myhostname set."""
    def make(**params):
        values = {"queue_directory": str(queue_dir), "myhostname": "mx.example.test",
                  "myorigin": "example.test", **params}
        (tmp_path / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in values.items()))
        return load(tmp_path)
    return make
