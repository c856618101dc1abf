"""qmgr's job preemption through a real master: a message with few
recipients slips past a big one waiting for the same destination
(<transport>_delivery_slot_cost and friends), with the test delivery agent
(qmgr_agent.py) as the smtp transport. What Postfix 3.7 did with the same
settings is quoted at the test."""

from __future__ import annotations

import json
import runpy
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

qh = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("qmgr_helpers.py"))))

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

AGENT = Path(__file__).with_name("qmgr_agent.py")
CONTENT = b"From: a@example.com\r\nSubject: list\r\n\r\nhello\r\n"


@pytest.mark.parametrize("main, small_at", [({}, 2),
                                            ({"smtp_delivery_slot_cost": "0"}, 40),
                                            ({"default_delivery_slot_cost": "1"}, 40)])
def test_a_small_message_slips_past_a_big_one(mailsys_instance, tmp_path, main, small_at):
    # Postfix 3.7, smtp_destination_concurrency_limit = 1,
    # smtp_destination_recipient_limit = 2, smtp-sink -w 1 as relayhost, one
    # message to 40 recipients, then one to 1: smtp delivered 2 of the big
    # one, then the small one, then the 38 others. With
    # smtp_delivery_slot_cost = 0 the small one was the 41st, the last.
    inst = mailsys_instance
    control = tmp_path / "control"
    control.mkdir()
    inst.write_config(
        master_cf=["qmgr unix n - n 300 1 qmgr", "bounce unix - - n - 0 bounce",
                   f"smtp unix - - n - - {AGENT} {control}"],
        main_cf={"mydestination": "mx.example.test", "smtp_destination_concurrency_limit": "1",
                 "smtp_destination_recipient_limit": "2", **main})
    (control / "hold").touch()              # the agent answers nothing yet
    inst.start()
    inst.wait_until(lambda: inst.children("qmgr"))
    big = qh.inject(inst, CONTENT, *(f"r{i}@remote.example" for i in range(40)))
    inst.wait_log(f"{big}: from=<alice@example.com>", timeout=20)
    time.sleep(1)                           # its first request is at the agent
    small = qh.inject(inst, CONTENT, "small@remote.example")
    inst.wait_log(f"{small}: from=<alice@example.com>", timeout=20)
    time.sleep(0.5)
    (control / "hold").unlink()
    inst.wait_log(f"{big}: removed", timeout=60)
    inst.wait_log(f"{small}: removed", timeout=20)
    rcpts = [json.loads(line)["rcpt"] for line in (control / "delivered").read_text().splitlines()]
    assert len(rcpts) == 41
    assert rcpts.index("small@remote.example") == small_at
