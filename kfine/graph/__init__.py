"""The TF-GNN graph stage: GraphTensor export/import, GNN KG embeddings, Beam subgraph sampling.

TF-GNN needs `tf.keras` to be Keras 2 (`tf-keras` with
`TF_USE_LEGACY_KERAS=1` set before TensorFlow is imported; upstream
tensorflow/gnn#874), while kfine runs on Keras 3. So the stage runs in its
own process, `python -m kfine.graph`, and exchanges files with the rest of
kfine; this package is the only one that imports `tensorflow_gnn` or
`tf_keras`, and only in that process. The functions here start it from any
(Keras 3) process.

Example:

>>> paths = kfine.graph.embed(kg, "kg_embeddings", epochs=30)
>>> paths["gnn"]  # pass as --init-embeddings, or to `initialize_encoder`
'kg_embeddings/gnn'
"""

import os
import subprocess
import sys
import tempfile

from kfine.errors import KfineError

LEGACY_KERAS = "TF_USE_LEGACY_KERAS"


def run_stage(argv, capture=False):
    """Runs `python -m kfine.graph *argv` in a child process with Keras 2 as `tf.keras`.

    Args:
        argv: list of str. A stage command and its flags (`["embed", "--out", "DIR"]`).
        capture: bool. Return the output instead of letting it through.

    Returns:
        The child's stdout when `capture`, else None.

    Raises:
        KfineError: the child reported bad input (its one-line message), or
            failed otherwise (e.g. tensorflow-gnn or tf-keras missing: the
            end of its error output).
    """
    checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    environment = {**os.environ, LEGACY_KERAS: "1",
                   "PYTHONPATH": os.pathsep.join(filter(None, [checkout, os.environ.get("PYTHONPATH")]))}
    completed = subprocess.run(
        [sys.executable, "-m", "kfine.graph", *map(str, argv)],
        env=environment,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE,
        text=True,
    )
    errors = completed.stderr.strip().splitlines()
    if completed.returncode == 0:
        return completed.stdout if capture else None
    reported = [line for line in errors if line.startswith("kfine: error: ")]
    if reported:
        raise KfineError(reported[-1].removeprefix("kfine: error: "))
    missing = [line for line in errors
               if "No module named 'tensorflow_gnn'" in line or "No module named 'tf_keras'" in line]
    if missing:
        raise KfineError(f"the graph stage needs tensorflow-gnn and tf-keras ({missing[-1].strip()}); "
                         "pip install 'tensorflow-gnn>=1.0,<1.1' 'tf-keras>=2.21,<2.22'")
    tail = "\n".join(errors[-15:])
    raise KfineError(f"the graph stage `kfine kg {argv[0]}` failed (exit {completed.returncode}):\n{tail}")


def _with_graph_files(knowledge_graph, argv):
    """Runs the stage on `knowledge_graph`, handed over as files."""
    with tempfile.TemporaryDirectory(prefix="kfine-graph-") as scratch:
        knowledge_graph.save(scratch)
        files = ["--triples", os.path.join(scratch, "triples.tsv")]
        if knowledge_graph.alias_pairs:
            files += ["--aliases", os.path.join(scratch, "aliases.tsv")]
        return run_stage([argv[0], *files, *argv[1:]], capture=True)


def embed(knowledge_graph, out_dir, dim=64, layers=1, decoder="distmult", epochs=30, held_out=0.05, seed=0):
    """Trains GNN and TransE embeddings of `knowledge_graph` in the graph stage's process.

    Args:
        knowledge_graph: `KnowledgeGraph`.
        out_dir: str. Receives `gnn/`, `transe/` and `metrics.json`.
        dim, layers, decoder, epochs, held_out, seed: as `kfine kg embed`'s flags.

    Returns:
        dict of paths: `metrics` (the JSON file) and one embeddings directory
        per model: `gnn`, `transe` and, unless `decoder` is TransE, the plain
        table with the GNN's decoder (e.g. `distmult`).

    Raises:
        KfineError: bad arguments, or the stage failed (e.g. tensorflow-gnn missing).
    """
    _with_graph_files(knowledge_graph, ["embed", "--out", out_dir, "--dim", dim, "--layers", layers,
                                        "--decoder", decoder, "--epochs", epochs, "--held-out", held_out,
                                        "--seed", seed])
    models = ["gnn", "transe"] + ([decoder] if decoder != "transe" else [])
    return {"metrics": os.path.join(out_dir, "metrics.json"), **{name: os.path.join(out_dir, name) for name in models}}


def export(knowledge_graph, out_dir):
    """Writes `knowledge_graph` as a TF-GNN graph directory; returns the schema's path."""
    _with_graph_files(knowledge_graph, ["export", "--out", out_dir])
    return os.path.join(out_dir, "schema.pbtxt")


def import_graph(graph_dir):
    """Reads a TF-GNN graph directory (`export`'s or the sampler's) into a `KnowledgeGraph`."""
    from kfine.knowledge.graph import KnowledgeGraph

    with tempfile.TemporaryDirectory(prefix="kfine-graph-") as scratch:
        run_stage(["import", graph_dir, "--out", os.path.join(scratch, "kg")], capture=True)
        return KnowledgeGraph.load(os.path.join(scratch, "kg"))


def sample(knowledge_graph, corpus_path, out_dir, hops=1, sample_size=64, beam_args="--runner=DirectRunner"):
    """Samples the subgraph around the entities `corpus_path` mentions (Beam); returns it as a `KnowledgeGraph`."""
    from kfine.knowledge.graph import KnowledgeGraph

    _with_graph_files(knowledge_graph, ["sample", "--corpus", corpus_path, "--out", out_dir, "--hops", hops,
                                        "--sample-size", sample_size, f"--beam-args={beam_args}"])
    return KnowledgeGraph.load(os.path.join(out_dir, "knowledge_graph"))
