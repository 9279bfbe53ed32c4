"""The layout holds: data flows one way, and ARCHITECTURE.md (the map) matches the tree.

Each package is a stack of layers in the order data moves through it. A module imports
only from its own layer or the layers before it (lazy imports inside functions count),
and no two modules import each other, directly or round about. A new module has to be
placed in a layer here and named in ARCHITECTURE.md.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAP = REPO / "ARCHITECTURE.md"

# (layer, modules): a name ending in ".*" stands for every module of that sub-package.
LAYERS = {
    "noisemix": [
        ("foundation", {"errors", "io", "rng", "cache", "dsp", "snr", "schema", "roots", "transforms", "audio"}),
        ("manifest", {"validate", "manifest"}),
        ("sources", {"adapters", "adapters.*", "corpus", "corpus.*", "synthetic", "energy", "sources"}),
        ("build", {"spec", "recipe", "build"}),
        ("mix", {"mix", "dataset"}),
        ("render", {"render", "verify"}),
        ("report", {"stats", "card", "report", "export", "export.*"}),
        ("interfaces", {"", "__main__", "cli", "cli_inputs", "testing"}),
    ],
    "dat": [
        ("foundation", {"errors", "io", "config", "memory", "distributed", "schedules", "grl", "losses", "metrics",
                        "bootstrap", "progress", "plots", "logs"}),
        ("data", {"data"}),
        ("models", {"models", "models.*", "checkpoint"}),
        ("train", {"stages", "selection", "predict", "stage1", "train"}),
        ("evaluate", {"evaluate", "claims"}),
        ("experiment", {"experiment_plots", "experiment_report", "experiment"}),
        ("interfaces", {"", "__main__", "cli"}),
    ],
}
# Imports against the flow, each with its reason.
ALLOWED_BACK_EDGES = {
    ("noisemix.build", "noisemix.card"): "build_manifest refreshes a card it finds in its output folder, "
                                         "so an earlier build's card never describes this one",
}


def modules(package: str) -> dict[str, Path]:
    """``{dotted name: file}`` of every module of ``package`` (a package by its ``__init__``)."""
    out = {}
    for path in sorted((REPO / package).rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        out[".".join(parts[:-1] if path.name == "__init__.py" else parts)] = path
    return out


def imports(package: str) -> dict[str, set[str]]:
    """``{module: modules of the same package it imports}``, lazy imports included."""
    known = modules(package)
    graph = {}
    for name, path in known.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = ".".join(here.split(".")[:len(here.split(".")) - node.level + 1]) if node.level else ""
                module = ".".join(p for p in (base, node.module) if p)
                # ``from . import x`` imports x, not the package; ``__version__`` is metadata, not a module.
                targets |= {f"{module}.{a.name}" for a in node.names} | ({module} if node.module else set())
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
        graph[name] = {t for t in targets if t in known and t != name}
    return graph


def layer_of(package: str) -> dict[str, int]:
    rank = {}
    for name in modules(package):
        short = name[len(package) + 1:] if name != package else ""
        for number, (_, members) in enumerate(LAYERS[package]):
            if short in members or any(m.endswith(".*") and short.startswith(m[:-1]) for m in members):
                rank[name] = number
    return rank


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_every_module_has_a_layer(package):
    unplaced = sorted(set(modules(package)) - set(layer_of(package)))
    assert not unplaced, f"place these in a layer of tests/test_layout.py and in ARCHITECTURE.md: {unplaced}"


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_imports_follow_the_data(package):
    rank, names = layer_of(package), [name for name, _ in LAYERS[package]]
    against = [f"{m} ({names[rank[m]]}) imports {t} ({names[rank[t]]})"
               for m, targets in imports(package).items() for t in sorted(targets)
               if rank[t] > rank[m] and (m, t) not in ALLOWED_BACK_EDGES]
    assert not against, "\n".join(against)


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_no_two_modules_import_each_other(package):
    graph = imports(package)
    # A package's __init__ re-exporting its own sub-modules is not a cycle of logic.
    graph = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                raise AssertionError("import cycle: " + " -> ".join(trail[trail.index(target):] + [target]))
            if not state.get(target):
                visit(target, trail + [target])
        state[node] = 2

    for start in sorted(graph):
        if not state.get(start):
            visit(start, [start])


def test_the_map_names_every_module_and_only_what_exists():
    text = MAP.read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:noisemix|dat|tests|benchmarks|scripts|manifests)/[\w./-]*)`", text))
    missing = sorted(p for p in named if not (REPO / p).exists())
    assert not missing, f"ARCHITECTURE.md names what the tree lacks: {missing}"
    unnamed = []
    for package in LAYERS:
        for name, path in modules(package).items():
            relative = path.relative_to(REPO).as_posix()
            folder = path.parent.relative_to(REPO).as_posix() + "/"
            if path.name in ("__main__.py",) or relative in named or (path.parent != REPO / package and folder in named):
                continue
            if path.name == "__init__.py" and path.parent == REPO / package and f"{package}/__init__.py" in named:
                continue
            unnamed.append(relative)
    assert not unnamed, f"ARCHITECTURE.md does not name: {unnamed}"
