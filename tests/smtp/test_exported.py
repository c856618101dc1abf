"""mailsys.smtp exports exactly its public names (httpx style), and stays pure."""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType

import mailsys.smtp as smtp


def test_all_equals_public_names():
    # Submodules become package attributes when imported; only replies is
    # meant to be used as a module from outside.
    public = {name for name in dir(smtp) if not name.startswith("_")}
    modules = {name for name in public if isinstance(getattr(smtp, name), ModuleType)}
    assert set(smtp.__all__) == (public - modules) | {"replies"}
    assert all(hasattr(smtp, name) for name in smtp.__all__)


def test_all_is_sorted_and_unique():
    assert list(smtp.__all__) == sorted(set(smtp.__all__), key=str)


FORBIDDEN = {"trio", "socket", "ssl", "lmdb", "OpenSSL", "asyncio", "structlog"}


def test_protocol_core_imports_no_io():
    root = Path(smtp.__file__).parent
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
