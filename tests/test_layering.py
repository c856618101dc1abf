"""The layering rules of STYLE.md, checked on the tree as it is.

- Pure packages (config, smtp, message, policy, sasl, ipc without its I/O,
  routing, the maillog renderers) load no trio, socket, ssl, OpenSSL or lmdb
  when imported; a few config helpers import socket or lmdb inside the one
  function that needs them, which this allows because importing stays clean.
- mailsys.queue never imports trio: store calls are synchronous and reach
  worker threads only through the runtime.
- A daemon in services/ never imports another daemon.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PURE = ["mailsys.config", "mailsys.smtp", "mailsys.message", "mailsys.policy", "mailsys.milter",
        "mailsys.sasl", "mailsys.ipc", "mailsys.routing",
        "mailsys.maillog.event", "mailsys.maillog.postfix", "mailsys.maillog.jsonl"]
BANNED = ["trio", "socket", "ssl", "OpenSSL", "lmdb"]


def modules_under(name: str) -> list[str]:
    path = ROOT / Path(*name.split("."))
    if path.with_suffix(".py").is_file():
        return [name]
    if not path.is_dir():
        return []
    found = []
    for file in sorted(path.rglob("*.py")):
        rel = file.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        found.append(".".join(parts))
    return found


def imports_of(file: Path) -> set[str]:
    tree = ast.parse(file.read_text(), str(file))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_pure_packages_import_no_io():
    modules = [m for name in PURE for m in modules_under(name)]
    assert modules, "no pure modules found"
    probe = ("import importlib, json, sys\n"
             f"for m in {modules!r}: importlib.import_module(m)\n"
             f"print(json.dumps(sorted(b for b in {BANNED!r} if b in sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert json.loads(out) == []


def test_pure_packages_never_mention_trio():
    for name in PURE:
        for module in modules_under(name):
            file = ROOT / (module.replace(".", "/") + ".py")
            if not file.is_file():
                file = ROOT / module.replace(".", "/") / "__init__.py"
            assert not {i.split(".")[0] for i in imports_of(file)} & {"trio"}, module


def test_queue_never_imports_trio():
    for file in (ROOT / "mailsys" / "queue").rglob("*.py"):
        assert "trio" not in {i.split(".")[0] for i in imports_of(file)}, file


def test_services_do_not_import_each_other():
    for file in (ROOT / "services").glob("*.py"):
        others = {i for i in imports_of(file) if i.startswith("services")}
        assert not others, f"{file.name} imports {others}"
