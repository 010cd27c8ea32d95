"""Imports flow one way: the floors of tools/architecture.py (stated in docs/ARCHITECTURE.md), no cycles."""

import importlib.util
import os
import textwrap

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("architecture", os.path.join(REPOSITORY, "tools", "architecture.py"))
architecture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(architecture)

MODULES, EDGES, EXTERNAL = architecture.import_graph(REPOSITORY)


def test_every_module_sits_on_a_floor():
    assert architecture.unplaced_modules(MODULES) == []


def test_no_module_imports_a_higher_floor():
    upward = architecture.upward_imports(EDGES)
    assert upward == [], "imports against the order of tools/architecture.py:\n" + "\n".join(upward)


def test_no_import_cycles():
    cycles = architecture.import_cycles(MODULES, EDGES)
    assert cycles == [], "modules that import each other:\n" + "\n".join(" <-> ".join(cycle) for cycle in cycles)


def test_only_the_graph_stage_loads_tfgnn_even_through_other_modules():
    assert architecture.graph_stage_leaks(MODULES, EDGES, EXTERNAL) == []


def test_the_scan_reads_lazy_imports_and_layers_as_kfine_layers():
    # Without these the checks above could pass on a scan that sees nothing.
    assert "kfine.layers.knowledge_injection" in MODULES
    assert ("kfine.cli", "kfine.bench") in EDGES  # inside a function in cli.py
    assert ("kfine.models.causal_lm", "kfine.layers") in EDGES
    assert {"tensorflow_gnn"} <= EXTERNAL["kfine.graph.graph_tensor"]


def test_checks_find_an_upward_import_a_cycle_and_a_stray_package(tmp_path):
    files = {
        "kfine/__init__.py": "",
        "kfine/knowledge/__init__.py": "",
        "kfine/knowledge/graph.py": "def load():\n    import kfine.training.loop\n",
        "kfine/training/__init__.py": "",
        "kfine/training/loop.py": "from . import steps\n",
        "kfine/training/steps.py": "import kfine.training.loop\n",
        "kfine/extras.py": "import tf_keras\n",
        "kfine/models/__init__.py": "from kfine import extras\n",
        "layers/__init__.py": "from kfine.layers.head import Head\n",
        "layers/head.py": "",
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    modules, edges, external = architecture.import_graph(str(tmp_path))
    assert architecture.upward_imports(edges) == [
        "kfine.knowledge.graph:2 (knowledge) imports kfine.training.loop (training)"]
    assert architecture.import_cycles(modules, edges) == [["kfine.training.loop", "kfine.training.steps"]]
    assert architecture.unplaced_modules(modules) == ["kfine.extras"]
    assert architecture.graph_stage_leaks(modules, edges, external) == ["kfine.extras", "kfine.models"]
    assert ("kfine.layers", "kfine.layers.head") in edges


def test_the_documented_diagram_is_drawn_from_the_current_imports():
    expected = architecture.diagram(EDGES)
    with open(os.path.join(REPOSITORY, architecture.DIAGRAM_FILE), encoding="utf-8") as stream:
        assert stream.read() == expected, "run: python tools/architecture.py"
    with open(os.path.join(REPOSITORY, architecture.DOCUMENT_FILE), encoding="utf-8") as stream:
        document = stream.read()
    block = document.partition(architecture.BEGIN_MARK)[2].partition(architecture.END_MARK)[0]
    assert block == f"\n```mermaid\n{expected}```\n", "run: python tools/architecture.py"
    for floor, names in architecture.FLOORS:
        assert floor in document and all(f"`{name}`" in document for name in names), floor
