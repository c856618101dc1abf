"""Fixtures for the admin tool tests: a config directory whose main.cf puts
the queue in tmp_path, and a queue with entries in every state."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import structlog

# Test modules import their helpers from here by module name.
sys.path.insert(0, str(Path(__file__).parent))

from admin_fixtures import Setup, populate  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_logging():
    """postsuper configures structlog for the whole process; leave it as found."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def utc(monkeypatch):
    """Local time is UTC, as on the machine the Postfix samples come from."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def setup(tmp_path) -> Setup:
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    queue_dir = tmp_path / "queue"
    queue_dir.mkdir()
    (config_dir / "main.cf").write_text(f"queue_directory = {queue_dir}\n"
                                        f"maillog_file = {tmp_path}/log/mail.log\n"
                                        f"maillog_file_prefixes = {tmp_path}\n")
    return Setup(config_dir, queue_dir)


@pytest.fixture
def queue(setup) -> dict[str, str]:
    return populate(setup.queue_dir)
