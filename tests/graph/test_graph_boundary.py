"""Only kfine/graph imports TF-GNN or tf-keras, and importing kfine imports neither."""

import ast
import os
import subprocess
import sys

import kfine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(kfine.__file__)))
FORBIDDEN = ("tensorflow_gnn", "tf_keras")


def imported_modules(path):
    with open(path, encoding="utf-8") as stream:
        tree = ast.parse(stream.read(), filename=path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" and node.args:
            if isinstance(node.args[0], ast.Constant):
                yield str(node.args[0].value)


def python_files(*folders):
    for folder in folders:
        for directory, _, names in os.walk(os.path.join(ROOT, folder)):
            yield from (os.path.join(directory, name) for name in names if name.endswith(".py"))


def test_only_the_graph_package_imports_tfgnn_or_tf_keras():
    graph_package = os.path.join(ROOT, "kfine", "graph") + os.sep
    offenders, graph_importers = [], []
    for path in python_files("kfine", "layers", "examples"):
        hits = [name for name in imported_modules(path) if name.split(".")[0] in FORBIDDEN]
        if hits and not path.startswith(graph_package):
            offenders.append((os.path.relpath(path, ROOT), hits))
        elif hits:
            graph_importers.append(os.path.basename(path))
    assert offenders == []
    # The scan does find the stage's own imports (it would pass vacuously otherwise).
    assert {"graph_tensor.py", "link_prediction.py", "sampling.py"} <= set(graph_importers)


def test_importing_kfine_and_its_graph_api_loads_neither():
    code = (
        "import sys, kfine, kfine.cli, kfine.graph, kfine.graph.commands, kfine.graph.embeddings, "
        "kfine.training.knowledge, kfine.bench\n"
        "kfine.cli.build_parser()\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))\n"
    )
    environment = {key: value for key, value in os.environ.items() if key != "TF_USE_LEGACY_KERAS"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
