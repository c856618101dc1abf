"""The shipped etc/: every parameter it names, set or shown commented out,
is one mailsys honours, and the whole configuration passes `check`."""

import re
from pathlib import Path

from mailsys.config import load, parse_master_cf
from mailsys.config.maincf import parse_main_cf
from mailsys.config.params import param

ETC = Path(__file__).resolve().parents[2] / "etc"


def test_every_parameter_in_main_cf_is_in_the_table():
    text = (ETC / "main.cf").read_text()
    set_names = set(parse_main_cf(text, str(ETC / "main.cf")))
    shown = set(re.findall(r"^#([a-z0-9_]+) *=", text, re.M))
    unknown = sorted(n for n in set_names | shown if param(n) is None)
    assert set_names and unknown == []


def test_shipped_configuration_loads_without_warnings():
    cfg = load(ETC)
    warnings: list[str] = []
    services = parse_master_cf(ETC / "master.cf", cfg, warnings)
    assert cfg.warnings == () and warnings == []
    names = {s.command for s in services}
    assert {"postlogd", "smtpd", "cleanup", "qmgr", "smtp", "lmtp", "local", "bounce",
            "anvil"} <= names
    for spec in services:
        for name, _ in spec.overrides:
            assert param(name) is not None, (spec.name, name)
