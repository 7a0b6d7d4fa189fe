"""stream/'s layout: its parts import one way only (docs/architecture.md, "Layers"), lazy imports included."""

from __future__ import annotations

import ast

from tests.conftest import ROOT

# Each part may import only parts of a lower rank (model and stats: nothing else from stream).
RANKS = {"stream.cli": 6, "stream.rig": 5, "stream.node": 4, "stream.monitor": 3, "stream.control": 2,
         "stream.stages": 1, "stream.model": 0, "stream.stats": 0}


def _part(module: str) -> str:
    """The part of stream a dotted module name belongs to: 'stream.stages.messages' -> 'stream.stages'."""
    return ".".join(module.split(".")[:2])


def _stream_imports(path) -> set[str]:
    """Every stream module ``path`` imports, at the top or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("stream"):
            if node.module == "stream":
                names.update(f"stream.{alias.name}" for alias in node.names)
            else:
                names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("stream."))
    return names


def _modules():
    for path in sorted((ROOT / "stream").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        yield path, ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_stream_module_belongs_to_one_part():
    loose = [module for _, module in _modules() if module != "stream" and _part(module) not in RANKS]
    assert not loose, f"modules outside stream's parts (add them to a subpackage): {loose}"


def test_stream_parts_import_one_way():
    wrong = []
    for path, module in _modules():
        if module == "stream":
            continue
        for name in _stream_imports(path):
            source, target = _part(module), _part(name)
            if source != target and not RANKS.get(target, 99) < RANKS[source]:
                wrong.append(f"{module} imports {name}")
    assert not wrong, wrong


def test_subpackages_say_what_they_hold_and_re_export_nothing():
    for part in ("stages", "model", "stats", "control", "monitor"):
        tree = ast.parse((ROOT / "stream" / part / "__init__.py").read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), part
        assert not [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))], part


def test_the_check_sees_an_import_against_the_direction(tmp_path):
    """The walk finds lazy imports and ``from stream import X``, so the test above can fail."""
    source = tmp_path / "x.py"
    source.write_text("def f():\n    from stream.node import StreamNode\n    from stream import rig\n")
    assert _stream_imports(source) == {"stream.node", "stream.rig"}
