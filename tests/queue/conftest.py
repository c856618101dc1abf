"""Fixtures for the queue store tests: a store in a temp dir. The helpers
(entries, the index consistency check) are in qstore_helpers.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mailsys.queue import QueueStore

# Spawned children import their entry points, and the tests their helpers,
# from this directory by module name.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def store(tmp_path):
    s = QueueStore.open(tmp_path)
    yield s
    s.close()
