"""Fixtures for the config tests: a config directory built from text."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


@pytest.fixture
def confdir(tmp_path):
    """confdir(main_text, master_text=None) -> Path of a fresh etc/ directory."""
    def make(main: str = "", master: str | None = None) -> Path:
        d = tmp_path / "etc"
        d.mkdir(exist_ok=True)
        (d / "main.cf").write_text(textwrap.dedent(main))
        if master is not None:
            (d / "master.cf").write_text(textwrap.dedent(master))
        return d
    return make


def run_cli(config_dir: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    """Run `mailsys -c DIR ARGS...` the way a user does."""
    return subprocess.run([sys.executable, "-m", "mailsys.cli.main", "-c", str(config_dir), *args],
                          capture_output=True, text=True, timeout=30, input=input)
