"""anvil under a real master: counts shared by clients, statistics at exit."""

from __future__ import annotations

import pytest
import trio

from mailsys.ipc import names
from mailsys.ipc.proto import anvil as proto
from mailsys.runtime.anvil_client import AnvilClient

pytestmark = pytest.mark.integration


def test_anvil_counts_and_logs_statistics(mailsys_instance):
    inst = mailsys_instance
    inst.write_config(master_cf=["anvil unix - - n - 1 anvil"])
    inst.start()
    path = names.private_path(inst.queue_dir, names.ANVIL)

    async def clients():
        one, two = AnvilClient(path, timeout=5), AnvilClient(path, timeout=5)
        first = await one.connect("smtp", "192.0.2.1")
        second = await two.connect("smtp", "192.0.2.1")
        rate = await one.event("smtp", "192.0.2.1", proto.RECIPIENT)
        await one.aclose()
        await two.aclose()
        return first, second, rate

    first, second, rate = trio.run(clients)
    assert (first.count, second.count, rate) == (1, 2, 1)
    assert inst.stop().returncode == 0
    log = inst.log_text()
    assert "mailsys/anvil[" in log
    assert "statistics: max connection count 2 for (smtp:192.0.2.1) at " in log
    assert "statistics: max recipient rate 1/60s for (smtp:192.0.2.1) at " in log
