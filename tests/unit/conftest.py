"""Unit tests import the pure-Python module_utils directly (no Ansible)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugins" / "module_utils"))
sys.path.insert(0, str(ROOT / "plugins" / "filter"))
