"""master.cf type "pass": smtpd serves client connections handed to it over private/NAME."""

from __future__ import annotations

import runpy
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("smtpd_helpers.py"))))


def _hand_over(listener: socket.socket, path: Path, done: list) -> None:
    """Accept one client on listener and pass it to the pass service at path,
    as postscreen does: one byte with the descriptor, then wait for the
    receiver to close the channel."""
    client, _ = listener.accept()
    with client, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as channel:
        channel.settimeout(10)
        channel.connect(str(path))
        socket.send_fds(channel, [b"P"], [client.fileno()])
        done.append(channel.recv(16))        # b"": the receiver took it and closed


def test_smtpd_as_pass_service_serves_a_passed_client(mailsys_instance):
    inst = mailsys_instance
    inst.write_config(master_cf=[*h.SERVICES, "smtpd pass - - n - - smtpd"],
                      main_cf={"mydestination": "$myhostname, localhost, example.test",
                               "local_recipient_maps": "", "smtpd_error_sleep_time": "0",
                               "smtpd_client_port_logging": "yes"})
    inst.start()
    path = inst.queue_dir / "private" / "smtpd"
    assert path.is_socket()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        done: list = []
        passer = threading.Thread(target=_hand_over, args=(listener, path, done))
        passer.start()
        # The passed socket is the only connection: the banner and all
        # replies come from smtpd, which sees the client's own address.
        qid, client_port = h.send_message(port)
        passer.join(10)
        assert done == [b""]
    log = inst.wait_log(f"disconnect from localhost[127.0.0.1]:{client_port}")
    assert f"connect from localhost[127.0.0.1]:{client_port}" in log
    assert f"{qid}: client=localhost[127.0.0.1]:{client_port}" in log
    envelope, _, content = h.queued(inst, qid)
    assert [r.address for r in envelope.recipients] == ["bob@example.test"]
    assert content.startswith(b"Received: from client.example.org (localhost [127.0.0.1])")


def test_pass_service_without_a_descriptor_is_logged_and_survives(mailsys_instance):
    inst = mailsys_instance
    inst.write_config(master_cf=[*h.SERVICES, "smtpd pass - - n - - smtpd"],
                      main_cf={"smtpd_error_sleep_time": "0"})
    inst.start()
    path = inst.queue_dir / "private" / "smtpd"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as channel:
        channel.settimeout(10)
        channel.connect(str(path))
        channel.sendall(b"P")                 # data, but no descriptor with it
        assert channel.recv(16) == b""
    inst.wait_log("smtpd: no connection was passed")
