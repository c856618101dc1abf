"""Fixtures for tests that run a real mailsys master: see instance.py beside this file."""

import importlib.util
import sys
from pathlib import Path

_NAME = "mailsys_test_instance"
if _NAME not in sys.modules:
    _spec = importlib.util.spec_from_file_location(_NAME, Path(__file__).with_name("instance.py"))
    sys.modules[_NAME] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules[_NAME])

mailsys_instance = sys.modules[_NAME].mailsys_instance
mailsys_running = sys.modules[_NAME].mailsys_running
