"""The documentation: the configuration reference is generated from the schema and current;
the README is short, for users, and its links and commands hold; docs/ speak of the product,
not of how its work was organised."""
from __future__ import annotations

import ast
import dataclasses
import re
import subprocess
import sys

from conftest import ROOT

DOCS = ROOT / "docs"
README = ROOT / "README.md"
MAX_README_LINES = 250
TWO_COMMANDS = ("./setup.sh && .venv/bin/python run_stream.py",
                "./setup.sh --dev && .venv/bin/python -m pytest -q tests")
# Words about how the work was organised, which belong in models/TRAINING_LOG.md at most.
README_WORDING = re.compile(r"issue |session", re.IGNORECASE)
DOCS_WORDING = re.compile(r"issue \d|\bsessions?\b|\blent\b|\bborrowed\b|\bstep \d", re.IGNORECASE)


def _reference() -> str:
    r = subprocess.run([sys.executable, "-m", "config.reference"], cwd=ROOT, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r.stdout.decode("utf-8")


def test_configuration_reference_is_current():
    assert (DOCS / "configuration.md").read_text(encoding="utf-8") == _reference(), (
        "docs/configuration.md is not the schema's reference: run "
        "`.venv/bin/python -m config.reference > docs/configuration.md`")


def test_configuration_reference_names_every_key():
    from config import schema

    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for cls in (c for c in vars(schema).values() if dataclasses.is_dataclass(c) and isinstance(c, type)):
        for f in dataclasses.fields(cls):
            assert f"`{f.name}`" in text, f"{cls.__name__}.{f.name} missing from docs/configuration.md"


def test_reference_imports_only_the_schema_and_the_standard_library():
    tree = ast.parse((ROOT / "config" / "reference.py").read_text(encoding="utf-8"))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(f"{node.module}.{node.names[0].name}" if node.module == "config" else node.module)
    wrong = [n for n in names if n not in ("__future__", "config.schema")
             and n.split(".")[0] not in sys.stdlib_module_names]
    assert not wrong, wrong
    code = "import sys, config.reference; print(sorted(m for m in ('torch', 'cv2', 'ultralytics') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_readme_is_short_and_for_users():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_README_LINES
    found = [line for line in text.splitlines() if README_WORDING.search(line)]
    assert not found, found
    for command in TWO_COMMANDS:
        assert f"    {command}\n" in text, command


def test_docs_speak_of_the_product():
    found = []
    for path in sorted(DOCS.glob("*.md")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if DOCS_WORDING.search(line):
                found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)


def test_links_between_documents_resolve():
    broken = []
    for path in [README, *sorted(DOCS.glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8")):
            if "://" in target or target.startswith("#"):
                continue
            file = target.split("#")[0]
            if not (path.parent / file).exists():
                broken.append(f"{path.relative_to(ROOT)} -> {target}")
    assert not broken, broken


def test_licence_is_the_agpl():
    head = (ROOT / "LICENSE").read_text(encoding="utf-8")[:200]
    assert "GNU AFFERO GENERAL PUBLIC LICENSE" in head and "Version 3" in head


def test_ci_runs_the_readmes_test_command():
    assert (ROOT / ".ci" / "run").read_text().rstrip().splitlines()[-1] == TWO_COMMANDS[1]
