"""Fixtures for the config tests: a config directory built from text."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


# The main.cf example of postfix-compat.md 1.1, checked there against Postfix 3.7.
COMPAT_EXAMPLE = """\
# main.cf
myhostname = mx.example.com
mydomain   = example.com
myorigin   = $mydomain
mydestination = $myhostname,
    localhost.${mydomain}
  # this comment line is dropped, the value continues
    localhost
foo = $$x ${myhostname?{set}:{unset}} ${nope:dflt}
"""


@pytest.fixture
def compat_main():
    """The postfix-compat.md 1.1 main.cf example."""
    return COMPAT_EXAMPLE


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


@pytest.fixture
def run_cli():
    """run_cli(config_dir, *args, input=None): run `mailsys -c DIR ARGS...` as a user does."""
    return _run_cli


def _run_cli(config_dir: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailsys.cli.main", "-c", str(config_dir), *args],
                          capture_output=True, text=True, timeout=30, input=input)
