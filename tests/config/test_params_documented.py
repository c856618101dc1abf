"""Every parameter has a meaning and a default that parses under its own type.

Like Postfix's mantools/check-postconf-undocumented: the table is the one
source of truth, so each entry must be usable as it stands.
"""

import pytest

from mailsys.config import load
from mailsys.config.params import PARAMS


@pytest.fixture(scope="module")
def defaults_cfg(tmp_path_factory):
    d = tmp_path_factory.mktemp("etc")
    (d / "main.cf").write_text("")
    return load(d)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_param_documented_and_default_parses(name, defaults_cfg):
    p = PARAMS[name]
    assert p.name == name
    assert p.doc.strip() and "\n" not in p.doc
    assert p.default or p.compute or p.name == "config_directory" or p.type.name in ("Str", "List")
    warnings: list[str] = []
    # a raw parameter is never expanded: its $names are the reading program's
    text = defaults_cfg.raw(name) if p.raw else defaults_cfg.expand(defaults_cfg.raw(name), warnings)
    assert warnings == []                 # a default never refers to an unknown name
    value = p.type.parse(text, p.unit)
    if p.min is not None and not isinstance(value, (str, tuple)):
        assert value >= p.min
    assert defaults_cfg[name] == value
    for word in (value if isinstance(value, tuple) else (value,)) if p.choices else ():
        assert word in p.choices

