"""spawn(8) through a real master: a policy server run per connection, as policyd-spf is run."""

from __future__ import annotations

import contextlib
import os
import pwd
import runpy
import socket
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

h = SimpleNamespace(**runpy.run_path(str(Path(__file__).with_name("smtpd_helpers.py"))))
sys.path.insert(0, str(Path(__file__).parents[1]))      # tests/unprivileged.py (tests/ is no package)
from unprivileged import open_directory  # noqa: E402

REJECT = "NOQUEUE: reject: RCPT from localhost[127.0.0.1]: "
# Root runs the command as user=nobody; anyone else runs it as themselves.
COMMAND_UID = pwd.getpwnam("nobody").pw_uid if os.geteuid() == 0 else os.geteuid()

# A policy server in the shape of policyd-spf: requests one after another on
# standard input, answers on standard output, until end-of-file.
POLICY_SCRIPT = """#!/bin/sh
while IFS= read -r line; do
  case "$line" in
    recipient=*) rcpt=${line#recipient=} ;;
    "")
      case "$rcpt" in
        spf-fail@*) echo "action=REJECT SPF check failed (uid $(id -u), cwd $(pwd))" ;;
        slow@*) sleep 30 ;;
        crash@*) exit 3 ;;
        *) echo "action=DUNNO" ;;
      esac
      echo
      rcpt= ;;
  esac
done
"""


@pytest.fixture
def policy_script():
    with open_directory("spawn") as d:
        script = d / "policy.sh"
        script.write_text(POLICY_SCRIPT)
        script.chmod(0o755)
        yield script


@pytest.fixture(autouse=True)
def _show_log(mailsys_instance):
    yield
    print(mailsys_instance.log_text())


def start(inst, script: Path, main_cf=None, maxproc: str = "0", user: str = "nobody") -> int:
    params = {"smtpd_recipient_restrictions": "check_policy_service unix:private/policy, "
                                              "permit_mynetworks, reject_unauth_destination",
              "smtpd_policy_service_try_limit": "1"}
    params.update(main_cf or {})
    services = [*h.SERVICES, f"policy unix - n n - {maxproc} spawn",
                f"  user={user} argv={script}"]
    return h.start(inst, params, services=services)


def rcpt(port: int, recipient: str) -> str:
    with h.session(port) as s:
        s.ehlo("c.example")
        assert s.mail("a@example.org")[0] == 250
        code, text = s.rcpt(recipient)
        return f"{code} {text.decode()}"


def test_smtpd_asks_a_spawned_policy_server(mailsys_instance, policy_script):
    inst = mailsys_instance
    port = start(inst, policy_script)
    with h.session(port) as s:
        s.ehlo("c.example")
        assert s.mail("a@example.org")[0] == 250
        assert s.rcpt("spf-fail@example.test") == (
            554, f"5.7.1 <spf-fail@example.test>: Recipient address rejected: SPF check failed "
                 f"(uid {COMMAND_UID}, cwd {inst.queue_dir})".encode())
        assert s.rcpt("bob@example.test") == (250, b"2.1.5 Ok")
        code, reply = s.data(h.MESSAGE)
        assert code == 250, reply
    inst.wait_log(REJECT + "554 5.7.1 <spf-fail@example.test>: Recipient address rejected: "
                  "SPF check failed")
    # One command served both questions of the session, and exits normally
    # when smtpd lets go of the connection: no warning.
    assert "mailsys/spawn[" not in inst.log_text()


def test_exit_status_and_time_limit_are_logged_as_postfix_logs_them(mailsys_instance,
                                                                     policy_script):
    inst = mailsys_instance
    port = start(inst, policy_script, {"policy_time_limit": "1"})
    assert rcpt(port, "crash@example.test") == \
        "451 4.3.5 <crash@example.test>: Recipient address rejected: Server configuration problem"
    inst.wait_log(f"mailsys/spawn[", timeout=5)
    inst.wait_log(f": warning: command {policy_script} exit status 3\n")
    assert rcpt(port, "slow@example.test") == \
        "451 4.3.5 <slow@example.test>: Recipient address rejected: Server configuration problem"
    text = inst.wait_log(f": warning: command {policy_script} killed by signal 9\n")
    line = next(ln for ln in text.splitlines() if "command time limit exceeded" in ln)
    assert f"mailsys/spawn[" in line
    assert line.split(": warning: ", 1)[1].startswith(f"{policy_script}: process id ")
    # The command was the one to go: smtpd saw the connection close.
    assert "warning: problem talking to server private/policy" in text


def answer(sock: socket.socket) -> bytes:
    """One policy reply: the lines up to the empty one."""
    data = b""
    while not data.endswith(b"\n\n"):
        chunk = sock.recv(100)
        if not chunk:
            break
        data += chunk
    return data


def test_the_process_limit_bounds_the_commands_running_at_once(mailsys_instance, policy_script):
    inst = mailsys_instance
    start(inst, policy_script, maxproc="2")
    path = str(inst.queue_dir / "private" / "policy")

    def client() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(b"request=smtpd_access_policy\nrecipient=x@example.test\n\n")
        return sock

    with contextlib.ExitStack() as stack:
        first, second = (stack.enter_context(client()) for _ in range(2))
        assert answer(first) == b"action=DUNNO\n\n"
        assert answer(second) == b"action=DUNNO\n\n"
        third = stack.enter_context(client())
        third.settimeout(1.5)
        with pytest.raises(TimeoutError):
            third.recv(100)                 # two commands run: the third client waits
        first.close()                       # its command sees end-of-file and exits
        third.settimeout(10)
        assert answer(third) == b"action=DUNNO\n\n"


def test_bad_attributes_are_fatal_and_throttle_the_service(mailsys_instance, policy_script):
    inst = mailsys_instance
    port = start(inst, policy_script, user="root",
                 main_cf={"smtpd_policy_service_timeout": "2s"})
    assert rcpt(port, "bob@example.test") == \
        "451 4.3.5 <bob@example.test>: Recipient address rejected: Server configuration problem"
    text = inst.wait_log("/services/spawn.py: bad command startup -- throttling")
    assert "mailsys/spawn[" in text and ": fatal: request to deliver as root\n" in text
