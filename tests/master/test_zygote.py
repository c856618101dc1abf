"""The fork server: children forked from it look exec'd, and the master copes without it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailsys.runtime import handoff, skeleton

pytestmark = pytest.mark.integration

PROBE = Path(__file__).with_name("probe_service.py")


@pytest.fixture
def probed(mailsys_instance):
    """A started instance with the probe service (on demand, maxproc 2) on a free port."""
    inst = mailsys_instance
    port = inst.free_port()
    inst.write_config([f"127.0.0.1:{port} inet n - n - 2 {PROBE}"])
    inst.start()
    return inst, port


def recv_line(sock, request):
    sock.sendall(request)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
        if data.endswith(b"\n"):
            break
    return data


def ask(inst, port, command="info"):
    with inst.connect(port) as s:
        data = recv_line(s, command.encode() + b"\n")
    return json.loads(data) if command == "info" else None


def cmdline(pid):
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return [a.decode() for a in raw.rstrip(b"\0").split(b"\0")]


def table():
    """(pid, state, ppid, argv) of every process."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
                argv = cmdline(entry)
            except OSError:
                continue
            state, ppid = stat[stat.rindex(b")") + 2:].split()[:2]
            yield int(entry), state.decode(), int(ppid), argv


def zygotes(inst):
    """Pids of this instance's fork servers."""
    return [pid for pid, state, _, argv in table()
            if state != "Z" and "mailsys.runtime.zygote" in argv and str(inst.config_dir) in argv]


def zombies_of(parent):
    return [pid for pid, state, ppid, _ in table() if state == "Z" and ppid == parent]


def fresh_signal_state():
    code = ("print(*(l.strip() for l in open('/proc/self/status')"
            " if l.startswith(('SigBlk', 'SigIgn', 'SigCgt'))), sep='\\n')")
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                         check=True).stdout
    return {k: v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


def test_invocation_reads_back_build_argv(tmp_path):
    script = tmp_path / "x.py"
    script.write_text("")
    args = handoff.ChildArgs(config_dir=Path("/etc/m"), service="smtp", type="inet",
                             status_fd=7, alive_fd=5, listen_fds=(6,), args=("a",))
    module = handoff.resolve_command("postlogd")
    kind, target, rest = handoff.invocation(handoff.build_argv(module, args))
    assert (kind, target) == ("module", "services.postlogd")
    assert handoff.parse_argv(rest) == args
    kind, target, rest = handoff.invocation(handoff.build_argv(handoff.resolve_command(str(script)), args))
    assert (kind, target) == ("path", str(script))
    assert handoff.parse_argv(rest) == args
    for bad in (["python"], [sys.executable, "-m", "services.x"], [sys.executable, "-P", "rel.py"],
                [sys.executable, "-P", "-m", "os"]):
        with pytest.raises(ValueError):
            handoff.invocation(bad)


def test_service_module_runs_as_main_from_the_preloaded_code(tmp_path):
    """A service module runs from the code preload() read, as `python -m` would run it."""
    code = f"""
import json, sys
from pathlib import Path
from mailsys.runtime import handoff, zygote
zygote.preload()
assert "services.postlogd" in zygote.MAIN_CODE and "services.master" not in zygote.MAIN_CODE
spec, _ = zygote.MAIN_CODE["services.postlogd"]
probe = (
    "import json, sys\\n"
    "json.dump({{'name': __name__, 'spec': __spec__.name, 'file': __file__,"
    " 'argv0': sys.argv[0], 'main': sys.modules['__main__'].__dict__ is globals(),"
    " 'preloaded': 'services.postlogd' in sys.modules}}, open({str(tmp_path / 'out')!r}, 'w'))\\n")
zygote.MAIN_CODE["services.postlogd"] = (spec, compile(probe, spec.origin, "exec"))
args = handoff.ChildArgs(config_dir=Path("/nonexistent"), service="postlog", type="unix-dgram",
                         status_fd=7, alive_fd=5, listen_fds=(6,), args=())
zygote.Job(tuple(handoff.build_argv(handoff.resolve_command("postlogd"), args))).run()
"""
    subprocess.run([sys.executable, "-P", "-c", code], check=True, timeout=30)
    out = json.loads((tmp_path / "out").read_text())
    assert out == {"name": "__main__", "spec": "services.postlogd",
                   "file": str(Path(handoff.__file__).parents[2] / "services" / "postlogd.py"),
                   "argv0": out["file"], "main": True, "preloaded": False}


def test_only_the_core_services_are_preloaded_the_others_on_first_fork():
    """preload() imports CORE_SERVICES; serve() imports any other service before
    forking it the first time, once, and leaves one that fails to import to the child."""
    code = """
import sys
from mailsys.runtime import zygote
zygote.preload()
assert all(f"services.{n}" in zygote.MAIN_CODE for n in zygote.CORE_SERVICES)
assert "services.verify" not in sys.modules and "services.verify" not in zygote.MAIN_CODE
forks = []
zygote.fork = lambda request, ctl, dispositions: forks.append(request.argv[3]) or 4242
class Ctl:
    requests = [zygote.encode({"argv": [sys.executable, "-P", "-m", name, "-c", "/x",
                                        "-n", "n", "-t", "unix"], "fds": []})
                for name in ("services.verify", "services.verify", "services.nonesuch")]
    def send(self, data):
        pass
ctl = Ctl()
zygote.socket.recv_fds = lambda sock, size, nfds: (
    ctl.requests.pop(0) if ctl.requests else b"", [], 0, None)
assert zygote.serve(ctl, {}) is None
assert forks == ["services.verify", "services.verify", "services.nonesuch"], forks
assert "services.verify" in zygote.MAIN_CODE and "services.nonesuch" not in zygote.MAIN_CODE
assert zygote._TRIED >= {"services.verify", "services.nonesuch"}
"""
    subprocess.run([sys.executable, "-P", "-c", code], check=True, timeout=60)


def test_child_waits_until_the_intermediate_is_gone():
    """wait_reparented() returns only once the child is the subreaper's: with an
    intermediate that lingers 0.3 s, the child reports the subreaper as its parent."""
    code = """
import ctypes, os, time
from mailsys.runtime import zygote
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)     # PR_SET_CHILD_SUBREAPER
r, w = os.pipe()
start = time.monotonic()
middle = os.fork()
if middle == 0:
    gate, held = os.pipe()
    if os.fork() == 0:
        os.close(held)
        zygote.wait_reparented(gate, os.getppid())
        os.write(w, str(os.getppid()).encode())
        os._exit(0)
    time.sleep(0.3)
    os._exit(0)
os.close(w)
os.waitpid(middle, 0)
ppid = int(os.read(r, 100))
assert ppid == os.getpid(), (ppid, os.getpid())
assert time.monotonic() - start >= 0.3
os.wait()
"""
    subprocess.run([sys.executable, "-P", "-c", code], check=True, timeout=30)


def test_forked_child_looks_exec_d(probed):
    inst, port = probed
    master = inst.master_pid()
    [zygote] = zygotes(inst)
    assert Path(f"/proc/{zygote}/stat").read_text().split(") ")[1].split()[1] == str(master)
    info = ask(inst, port)
    assert info["forked"], "the service was exec'd, not forked"
    assert info["ppid"] == master                     # reparented: the master supervises it
    assert info["name"] == "__main__"
    # The argv it would have been exec'd with, in sys.argv, sys.orig_argv and ps.
    assert info["orig_argv"][:3] == [sys.executable, "-P", str(PROBE)]
    assert info["argv"] == [str(PROBE), *info["orig_argv"][3:]]
    assert cmdline(info["pid"]) == info["orig_argv"]
    args = handoff.parse_argv(info["argv"][1:])
    # Exactly the descriptors the argv names, stdin on /dev/null, nothing else.
    fds = {int(k): v for k, v in info["fds"].items()}
    assert set(fds) == {0, 1, 2, args.status_fd, args.alive_fd, *args.listen_fds}
    assert fds[0] == "/dev/null"
    assert fds[args.alive_fd].startswith("pipe:") and fds[args.status_fd].startswith("pipe:")
    assert fds[args.listen_fds[0]].startswith("socket:")
    assert info["signals"] == fresh_signal_state()
    assert tuple(info["gc"]) == skeleton.GC_THRESHOLDS     # the daemon's own, not the zygote's
    # Two processes of the service at once (concurrency 1: the first is busy
    # while its client holds on) each have their own random state.
    with inst.connect(port) as first, inst.connect(port) as second:
        one, two = (json.loads(recv_line(s, b"info\n")) for s in (first, second))
    assert one["pid"] != two["pid"] and one["forked"] and two["forked"]
    assert one["random"] != two["random"]


def test_zygote_warm_up_leaves_nothing_behind(probed):
    """After its warm-up trio runs: one thread, standard I/O and its socket only, SIGINT ignored."""
    inst, port = probed
    [zygote] = zygotes(inst)
    ask(inst, port)                                   # it has forked a child: warmed up long since

    def picture():
        fds = {int(n): os.readlink(f"/proc/{zygote}/fd/{n}") for n in os.listdir(f"/proc/{zygote}/fd")}
        return os.listdir(f"/proc/{zygote}/task"), fds

    # Between requests (one may be in flight: its descriptors are held until the fork).
    deadline = time.monotonic() + 5
    while len((now := picture())[1]) != 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    tasks, fds = now
    assert tasks == [str(zygote)]
    assert fds[0] == "/dev/null" and {1, 2} <= set(fds)
    [extra] = set(fds) - {0, 1, 2}
    assert fds[extra].startswith("socket:")           # its end of the master's socket
    status = {k: v.strip() for k, _, v in (line.partition(":") for line in
                                           Path(f"/proc/{zygote}/status").read_text().splitlines())}
    assert int(status["SigIgn"], 16) & (1 << (signal.SIGINT - 1))


def test_master_preloads_before_forking_the_zygote(probed):
    """The master imported the fork server's modules itself (to share them): lmdb's extension
    is mapped in the master, which never opens a queue, at the same address as in the zygote."""
    inst, _ = probed
    [zygote] = zygotes(inst)

    def lmdb_maps(pid):
        return {line.split()[0] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
                if "/lmdb/cpython" in line}

    assert lmdb_maps(inst.master_pid())
    assert lmdb_maps(inst.master_pid()) == lmdb_maps(zygote)


def test_zygote_exits_with_the_master(probed):
    inst, _ = probed
    [zygote] = zygotes(inst)
    stop = inst.stop()
    assert stop.returncode == 0, stop.stderr
    assert not Path(f"/proc/{zygote}").exists()

    inst.start()
    [zygote] = zygotes(inst)
    os.kill(inst.master_pid(), signal.SIGKILL)
    inst.wait_until(lambda: not Path(f"/proc/{zygote}/cmdline").exists()
                    or not Path(f"/proc/{zygote}/cmdline").read_bytes(), timeout=5)


def test_dead_zygote_falls_back_to_exec_then_restarts(probed):
    inst, port = probed
    [zygote] = zygotes(inst)
    os.kill(zygote, signal.SIGKILL)
    info = ask(inst, port)                            # on demand: started now, without it
    assert not info["forked"]
    assert info["ppid"] == inst.master_pid()
    inst.wait_log(f"warning: fork server pid {zygote}:")
    assert info["orig_argv"][:3] == [sys.executable, "-P", str(PROBE)]
    ask(inst, port, "exit")
    time.sleep(1.2)                                   # past the first restart back-off
    info = inst.wait_until(lambda: (i := ask(inst, port)) and i["forked"] and i, timeout=10)
    [new] = zygotes(inst)
    assert new != zygote
    assert info["ppid"] == inst.master_pid()


def test_master_reaps_orphaned_descendants(probed):
    inst, port = probed
    master = inst.master_pid()
    first = ask(inst, port)
    ask(inst, port, "orphan")                         # the service exits, its child lives on
    inst.wait_until(lambda: (i := ask(inst, port)) and i["pid"] != first["pid"], timeout=10)
    time.sleep(0.6)                                   # the orphan exited 0.3 s after its parent
    inst.wait_until(lambda: not zombies_of(master), timeout=5)


def test_child_gone_before_its_pid_arrives_is_reaped_and_throttled(mailsys_instance):
    inst = mailsys_instance
    port = inst.free_port()
    inst.write_config([f"127.0.0.1:{port} inet n - n - 2 {PROBE} vanish"])
    inst.start()
    with inst.connect(port):                          # on demand: a client starts it
        inst.wait_log(f"{PROBE}: bad command startup -- throttling")
    assert f"process {PROBE} pid" in inst.log_text() and "exit status 5" in inst.log_text()
    assert not zombies_of(inst.master_pid())
