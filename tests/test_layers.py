"""The pipeline's layering: rendering is pure, imports flow one way."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "digest"
#: Which digest modules each layer may import (besides records, errors, text, links).
ALLOWED = {
    "render": {"render", "tokens", "records", "errors", "text", "children"},
    "deliver": {"deliver", "render", "records", "errors"},
}


def _digest_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("digest"):
            parts = node.module.split(".")
            found.add(parts[1] if len(parts) > 1 else node.names[0].name)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("digest."))
    return found


def test_render_and_deliver_import_only_lower_layers() -> None:
    for layer, allowed in ALLOWED.items():
        for path in sorted((PACKAGE / layer).glob("*.py")):
            extra = _digest_imports(path) - allowed - {"__version__"}
            assert not extra, f"{path.relative_to(ROOT)} imports {sorted(extra)}"


def test_rendering_loads_no_database_model_or_numpy() -> None:
    """A worker that renders imports neither the store, the model, SQLite nor numpy."""
    code = (
        "import digest.render.bundle, digest.render.email, digest.render.feeds\n"
        "import digest.render.wiki, digest.render.links\n"
    )
    heavy = {"numpy", "sqlite3", "lightfm", "sklearn", "digest.store", "digest.model"}
    assert _loaded_after(code, heavy) == []


def _loaded_after(code: str, modules: set[str]) -> list[str]:
    """Which of `modules` a fresh interpreter holds after running `code`."""
    probe = f"{code}import sys\nprint(sorted(set({sorted(modules)!r}) & set(sys.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return ast.literal_eval(out.stdout.strip())


def test_nothing_below_the_cli_imports_it() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name not in ("cli.py", "__main__.py"):
            assert "cli" not in _digest_imports(path), f"{path.relative_to(ROOT)} imports cli"


def test_the_cli_starts_without_the_model_libraries() -> None:
    """`digest --help` and commands that need no model do not pay for loading it."""
    code = (
        "from click.testing import CliRunner\n"
        "from digest.cli import cli\n"
        "assert CliRunner().invoke(cli, ['--help']).exit_code == 0\n"
    )
    heavy = {"digest.model", "digest.rank", "digest.training", "digest.evaluate"}
    heavy |= {"sklearn", "scipy", "lightfm", "torch", "sentence_transformers"}
    assert _loaded_after(code, heavy) == []
