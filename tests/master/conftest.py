"""The master's tests use the integration fixtures (tests/integration/instance.py)."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "mailsys_integration_conftest", Path(__file__).parents[1] / "integration" / "conftest.py")
_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_conftest)

mailsys_instance = _conftest.mailsys_instance
mailsys_running = _conftest.mailsys_running
