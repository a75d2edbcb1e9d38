"""Makes this folder's ``helpers.py`` importable as ``hierarchy_helpers`` by the test modules beside it.

The suite runs with ``--import-mode=importlib``, which puts no test folder on ``sys.path``; pytest imports
this conftest before it collects the test modules of the folder, so they can ``import hierarchy_helpers``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_NAME = "hierarchy_helpers"

if _NAME not in sys.modules:
    _spec = importlib.util.spec_from_file_location(_NAME, Path(__file__).with_name("helpers.py"))
    assert _spec is not None and _spec.loader is not None
    _helpers = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _helpers
    _spec.loader.exec_module(_helpers)
