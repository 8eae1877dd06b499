"""Small rooms: no function in services/ or shared/ runs over 100 lines and no module over
600, so that each can be read whole. The declarative schemas (shared/schemas/) are aside,
as are tests and the web clients' static files (not Python). Each offender is named."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ("services", "shared")
ASIDE = (ROOT / "shared" / "schemas",)
MAX_FUNCTION_LINES = 100
MAX_MODULE_LINES = 600


def modules() -> list[Path]:
    found = []
    for top in CHECKED:
        for path in sorted((ROOT / top).rglob("*.py")):
            if not any(path.is_relative_to(aside) for aside in ASIDE):
                found.append(path)
    return found


def offences(path: Path) -> list[str]:
    """What is too long in one module: the module, and each function (from its `def` line
    to its last, nested functions counted in their own right and in their parents')."""
    text = path.read_text()
    name = path.relative_to(ROOT).as_posix()
    found = []
    lines = len(text.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(f"{name}: {lines} lines (at most {MAX_MODULE_LINES} a module)")
    for node in ast.walk(ast.parse(text, filename=name)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(
                    f"{name}:{node.lineno} {node.name}: {length} lines "
                    f"(at most {MAX_FUNCTION_LINES} a function)"
                )
    return found


def test_the_layout_is_checked_where_the_code_is():
    checked = {p.relative_to(ROOT).as_posix() for p in modules()}
    assert "services/gateway/app.py" in checked and "shared/clock.py" in checked
    assert not any(name.startswith("shared/schemas/") for name in checked)


def test_no_function_over_100_lines_and_no_module_over_600():
    found = [offence for path in modules() for offence in offences(path)]
    assert found == [], "too long, split it:\n" + "\n".join(found)
