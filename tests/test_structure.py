"""The layers import one way: models (no project imports) <- trackers <- stream; the config
loads no model code."""
from __future__ import annotations

import ast
import subprocess
import sys

from conftest import ROOT

# package -> the project packages (or modules) it may import
ALLOWED = {
    "models": ("models",),
    "trackers": ("models", "trackers"),
    "config": ("config", "models.defaults", "models.errors", "models.formats"),
    "stream": ("config", "models", "trackers", "stream"),
}


def _project_imports(path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return [n for n in names if n.split(".")[0] in ALLOWED]


def test_packages_import_one_way():
    wrong = []
    for package, allowed in ALLOWED.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for name in _project_imports(path):
                if not any(name == a or name.startswith(a + ".") for a in allowed):
                    wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_loading_the_config_loads_no_model_code():
    code = "import sys, config.schema; print(sorted(m for m in ('torch', 'cv2', 'ultralytics') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
