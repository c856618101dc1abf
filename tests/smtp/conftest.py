"""Make the shared driver in _smtp_testlib.py importable from these tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
