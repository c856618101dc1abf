"""import_environment through a real master: what a pipe(8) command finds in its
environment when the master was started from a shell with other variables."""

from __future__ import annotations

import json
import os
import runpy
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
qh = SimpleNamespace(**runpy.run_path(str(HERE / "qmgr_helpers.py")))
MAILSYS = runpy.run_path(str(HERE / "instance.py"))["MAILSYS"]

# Writes its environment as JSON into the directory named by its argument.
SCRIPT = """#!/usr/bin/python3
import json, os, sys
with open(os.path.join(sys.argv[1], f"{os.getpid()}.json"), "w") as f:
    json.dump(dict(os.environ), f)
"""
SHELL = {"FOO": "bar", "LANG": "de_DE.UTF-8", "TZ": "Europe/Berlin"}


@pytest.fixture
def out_dir():
    """Where the script writes: nobody, whom it runs as, may not enter pytest's directories."""
    d = Path(tempfile.mkdtemp(prefix="msenv", dir="/tmp"))
    os.chmod(d, 0o1777)
    (d / "dump").write_text(SCRIPT)
    (d / "dump").chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def command_env(inst, out_dir: Path, main_cf: dict[str, str]) -> dict[str, str]:
    inst.write_config(
        master_cf=["qmgr unix n - n 300 1 qmgr", "bounce unix - - n - 0 bounce",
                   "cleanup unix - - n - 0 cleanup",
                   f"envdump unix - n n - - pipe user=nobody argv={out_dir}/dump {out_dir}"],
        main_cf={"mydestination": "", "transport_maps": "inline:{ envdump.test=envdump: }",
                 **main_cf})
    env = {**os.environ, **SHELL}
    r = subprocess.run([*MAILSYS, "-c", str(inst.config_dir), "start"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    qid = qh.inject(inst, b"Subject: env\r\n\r\nhi\r\n", "x@envdump.test", sender="")
    inst.wait_log(f"{qid}: removed", timeout=20)
    [dump] = out_dir.glob("*.json")
    return json.loads(dump.read_text())


def test_commands_see_only_what_import_environment_keeps(mailsys_instance, out_dir):
    # Postfix 3.7.11, the same shell and defaults: LANG=C, MAIL_CONFIG,
    # PATH=/usr/bin:/bin, TZ=Europe/Berlin (and the shell's PWD).
    env = command_env(mailsys_instance, out_dir, {})
    assert env["LANG"] == "C" and env["TZ"] == "Europe/Berlin"
    assert env["MAIL_CONFIG"] == str(mailsys_instance.config_dir)
    assert env["PATH"] == "/usr/bin:/bin"
    assert "FOO" not in env


def test_a_wider_import_environment_reaches_exported_names(mailsys_instance, out_dir):
    env = command_env(mailsys_instance, out_dir, {"import_environment": "FOO LANG",
                                                  "export_environment": "FOO LANG TZ"})
    assert env["FOO"] == "bar" and env["LANG"] == "de_DE.UTF-8"
    assert "TZ" not in env                  # exported, but the master did not import it
