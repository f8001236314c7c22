"""The package layout (docs/CONTRACTS.md): no import cycle between modules, no module over 500
lines, every import path that README.md and docs/ name still imports, and the old flat paths
are the moved modules themselves."""

from __future__ import annotations

import ast
import importlib
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "initlab"


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = p
    return out


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Every initlab module `path` imports, at module level or inside functions."""
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            found.add(mod)
            found |= {f"{mod}.{a.name}" for a in node.names}
    return {m for m in found if m in mods and m != name}


def test_no_import_cycles_and_no_long_modules() -> None:
    mods = _modules()
    # a package __init__ that re-exports is an index, not a layer: left out of the graph
    layers = {n: p for n, p in mods.items() if p.name != "__init__.py"}
    edges = {n: _imports(n, p, mods) & set(layers) for n, p in layers.items()}

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for m in edges[todo.pop()]:
                if m not in seen:
                    seen.add(m)
                    todo.append(m)
        return seen

    cycles = sorted(n for n in layers if n in reach(n))
    assert not cycles, f"modules on an import cycle: {cycles}"
    long = {n: len(p.read_text().splitlines()) for n, p in layers.items()}
    assert not {n: k for n, k in long.items() if k > 500}


def test_dependencies_point_one_way() -> None:
    """The core never imports the outer layers; results never imports report; only cli imports
    cli."""
    mods = _modules()
    inner = ("initlab.nn", "initlab.theory", "initlab.data")
    outer = ("initlab.config", "initlab.results", "initlab.report", "initlab.sweep",
             "initlab.check", "initlab.cli", "initlab.experiment", "initlab.api")
    for name, path in mods.items():
        deps = _imports(name, path, mods)
        if name.startswith(inner):
            assert not {d for d in deps if d.startswith(outer)}, name
        if name.startswith("initlab.results") and path.name != "__init__.py":  # (re-exports)
            assert not {d for d in deps if d.startswith("initlab.report")}, name
        if not name.startswith("initlab.cli"):
            assert not {d for d in deps if d.startswith("initlab.cli")}, name


def _documented_paths() -> list[str]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    text = "\n".join(p.read_text() for p in files)
    paths = set(re.findall(r"(?<![\w/.-])(initlab(?:\.[A-Za-z_]\w*)+)", text))
    for mod, names in re.findall(r"from (initlab(?:\.\w+)*) import ([\w, ]+)", text):
        paths |= {f"{mod}.{n.strip()}" for n in names.split(",") if n.strip()}
    return sorted(p for p in paths if not p.endswith((".py", ".yaml", ".json")))


@pytest.mark.parametrize("path", _documented_paths())
def test_every_documented_import_path_resolves(path: str) -> None:
    parts = path.split(".")
    for k in range(len(parts), 0, -1):  # the longest importable prefix, then attributes
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ImportError:
            continue
        for attr in parts[k:]:
            obj = getattr(obj, attr)
        return
    pytest.fail(f"{path} does not import")


def test_documented_paths_cover_the_public_api() -> None:
    paths = set(_documented_paths())
    assert {"initlab.sample", "initlab.gain", "initlab.load_config", "initlab.run"} <= paths


def test_old_flat_paths_are_the_moved_modules() -> None:
    import initlab

    for old, new in initlab.MOVED.items():
        moved = importlib.import_module(f"initlab.{old}")
        assert moved is importlib.import_module(new)
        assert moved.__spec__ is not None and moved.__spec__.name == new
    from initlab.model import population_memory_bytes  # docs/benchmarks.md

    from initlab.nn.model import population_memory_bytes as same

    assert population_memory_bytes is same
    assert sys.modules["initlab.stats"] is sys.modules["initlab.nn.stats"]
    # the packages that kept an old module's name re-export its public names
    from initlab import config, results, sweep, theory

    assert theory.critical_sigma_w2 and theory.jacobian_moments and theory.trajectory
    assert config.load_config and results.load_result and results.write_result
    assert sweep.__all__


def test_commands_start_without_scipy_or_matplotlib(tmp_path: Path) -> None:
    """`initlab run --no-plots` on a small tanh net, and `validate`, import neither scipy nor
    matplotlib (each costs every start about a second): they are imported where used."""
    import subprocess
    import sys

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("name: tiny\nseeds: 2\ndata: {name: circle, samples: 32}\n"
                   "model: {depth: 3, width: 4, activation: tanh}\ninit: [xavier_normal]\n"
                   "train: {lr: 0.1, epochs: 3}\n")
    probe = ("import sys, runpy\nsys.argv = ['initlab'] + sys.argv[1:]\n"
             "try:\n    runpy.run_module('initlab.cli', run_name='__main__')\n"
             "except SystemExit as e:\n    assert not e.code, e.code\n"
             "finally:\n    print(sorted({m.split('.')[0] for m in sys.modules} & "
             "{'scipy', 'matplotlib'}), file=sys.stderr)\n")
    for args in (["validate", str(cfg)],
                 ["run", str(cfg), "--no-plots", "--out", str(tmp_path / "out")]):
        p = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        assert p.stderr.strip().splitlines()[-1] == "[]", (args, p.stderr[-300:])


def test_style_tab10_is_matplotlibs() -> None:
    from matplotlib.colors import to_hex

    from initlab.report.style import TAB10

    names = ("blue", "orange", "green", "red", "purple", "brown", "pink", "gray", "olive",
             "cyan")
    assert tuple(to_hex(f"tab:{c}") for c in names) == TAB10
