"""mailsys.ipc's __all__ lists exactly its public names (httpx style), and the
package stays pure: importing it pulls in no trio, socket or lmdb."""

import subprocess
import sys
import types

import mailsys.ipc


def test_all_equals_public_names():
    public = {name for name, value in vars(mailsys.ipc).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert sorted(mailsys.ipc.__all__) == sorted(public)


def test_pure_package_imports_no_io():
    code = ("import sys, mailsys.ipc, mailsys.ipc.names, mailsys.ipc.proto;"
            "print(sorted({'trio', 'socket', 'lmdb', 'ssl'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
