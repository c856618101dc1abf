"""Fixtures for the delivery tests."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture
def shared_dir():
    """A directory that the user a command or file delivery runs as (nobody)
    may write: pytest's own directories are root's alone."""
    d = Path(tempfile.mkdtemp(prefix="msdel", dir="/tmp"))
    os.chmod(d, 0o1777)
    yield d
    shutil.rmtree(d, ignore_errors=True)
