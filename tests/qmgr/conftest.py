"""Fixtures for the in-process qmgr tests: a real queue store in a temp dir."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Test modules import their helpers from here by module name.
sys.path.insert(0, str(Path(__file__).parent))

from qmgr_fixtures import ROUTING, FakeAgents  # noqa: E402

from mailsys.qmgr.manager import QueueManager  # noqa: E402
from mailsys.qmgr.settings import Limits, QmgrSettings  # noqa: E402
from mailsys.queue import QueueStore  # noqa: E402


@pytest.fixture
def store(tmp_path):
    s = QueueStore.open(tmp_path)
    yield s
    s.close()


@pytest.fixture
def make_manager(store):
    def make(agents: FakeAgents, limits: Limits = Limits(), **settings) -> QueueManager:
        s = QmgrSettings(**{"queue_run_delay": 3600, **settings})
        return QueueManager(store, s, ROUTING, lambda transport: limits, agents)
    return make
