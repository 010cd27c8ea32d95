"""The graph stage, driven as users drive it from Keras 3 code: through child processes.

This test process runs Keras 3 as `tf.keras`, where TF-GNN cannot load, so
every TF-GNN step runs in `python -m kfine.graph` (or a child script with
`TF_USE_LEGACY_KERAS=1`), exactly like `kfine.graph.embed` does for users.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import kfine.graph
from kfine.datasets.geonames import default_kg_files
from kfine.errors import KfineError
from kfine.graph.embeddings import initialize_encoder, read_embeddings
from kfine.graph.ranking import rank_summary, realistic_rank
from kfine.knowledge.graph import KnowledgeGraph
from kfine.layers import KnowledgeGraphEncoder


@pytest.fixture(scope="module")
def people_graph(people_kg_files):
    return KnowledgeGraph.from_files(people_kg_files["triples"], people_kg_files["aliases"])


def legacy_keras_python(code, tmp_path):
    """Runs `code` in a child Python with Keras 2 as tf.keras (what TF-GNN needs); returns stdout."""
    environment = {**os.environ, "TF_USE_LEGACY_KERAS": "1"}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, env=environment,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_bundled_kg_round_trips_through_a_graph_tensor_and_its_schema_validates(tmp_path):
    files = default_kg_files()
    graph = KnowledgeGraph.from_files(files["triples"], files["aliases"])
    schema = kfine.graph.export(graph, str(tmp_path / "graph"))
    assert kfine.graph.import_graph(str(tmp_path / "graph")) == graph
    # TF-GNN's own validator (the tfgnn_validate_graph_schema tool) accepts the schema.
    validated = subprocess.run(
        [sys.executable, "-m", "tensorflow_gnn.tools.validate_graph_schema", f"--graph_schema={schema}"],
        env={**os.environ, "TF_USE_LEGACY_KERAS": "1"}, capture_output=True, text=True,
    )
    assert validated.returncode == 0, validated.stderr[-2000:]
    assert "Schema validated correctly" in validated.stderr


def test_import_reads_a_graph_written_by_other_tfgnn_tools(tmp_path):
    # Another tool's shape: node sets without a "name" feature (named by "#id"),
    # one edge set per relation and no relation feature, reversed edge sets.
    legacy_keras_python(
        """
        import tensorflow as tf, tensorflow_gnn as tfgnn
        schema = tfgnn.parse_schema('''
          node_sets { key: "city" value { features { key: "#id" value { dtype: DT_STRING } } } }
          node_sets { key: "country" value { features { key: "#id" value { dtype: DT_STRING } } } }
          edge_sets { key: "capital_of" value { source: "city" target: "country" } }
          edge_sets { key: "borders" value { source: "country" target: "country" } }
          edge_sets { key: "located_in_reversed" value { source: "country" target: "city"
                      metadata { extra { key: "edge_type" value: "reversed" } } } }
        ''')
        def nodes(names):
            return tfgnn.NodeSet.from_fields(sizes=[len(names)], features={"#id": tf.constant(names)})
        def edges(source, target, pairs):
            return tfgnn.EdgeSet.from_fields(sizes=[len(pairs)], adjacency=tfgnn.Adjacency.from_indices(
                (source, tf.constant([p[0] for p in pairs], tf.int64)),
                (target, tf.constant([p[1] for p in pairs], tf.int64))))
        graph = tfgnn.GraphTensor.from_pieces(
            node_sets={"city": nodes(["Paris", "Lyon"]), "country": nodes(["France", "Spain"])},
            edge_sets={"capital_of": edges("city", "country", [(0, 0)]),
                       "borders": edges("country", "country", [(0, 1), (1, 0)]),
                       "located_in_reversed": edges("country", "city", [(0, 0), (0, 1)])})
        tfgnn.write_schema(schema, "schema.pbtxt")
        with tf.io.TFRecordWriter("graph.tfrecords") as writer:
            writer.write(tfgnn.write_example(graph).SerializeToString())
        """,
        tmp_path,
    )
    graph = kfine.graph.import_graph(str(tmp_path))
    assert graph.triples == [
        ("France", "borders", "Spain"),
        ("Lyon", "located_in", "France"),
        ("Paris", "capital_of", "France"),
        ("Paris", "located_in", "France"),
        ("Spain", "borders", "France"),
    ]


def test_import_of_a_folder_without_a_schema_is_a_one_line_error(tmp_path):
    with pytest.raises(KfineError, match="no schema.pbtxt: not a TF-GNN graph directory"):
        kfine.graph.import_graph(str(tmp_path))


def test_realistic_filtered_rank_and_summary():
    scores = np.array([0.9, 0.5, 0.7, 0.5, 0.1])
    # Entity 2 is another true answer (filtered); entity 0 is better; entity 3 ties.
    assert realistic_rank(scores, answer=1, true_answers=[1, 2]) == 2.5
    assert realistic_rank(scores, answer=0, true_answers=[0]) == 1.0
    summary = rank_summary([1.0, 2.0, 4.0, 20.0])
    assert summary["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 4 + 1 / 20) / 4)
    assert (summary["hits_at_1"], summary["hits_at_3"], summary["hits_at_10"]) == (0.25, 0.5, 0.75)


@pytest.fixture(scope="module")
def people_embeddings(people_graph, tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp("embed") / "embeddings")
    return kfine.graph.embed(people_graph, out_dir, dim=8, epochs=3, held_out=0.1)


def test_embed_reports_filtered_metrics_for_the_gnn_and_transe(people_embeddings, people_graph):
    with open(people_embeddings["metrics"], encoding="utf-8") as stream:
        metrics = json.load(stream)
    assert set(metrics["models"]) == {"gnn", "transe", "distmult"}  # distmult: the GNN decoder on a plain table
    for row in metrics["models"].values():
        test = row["test"]
        assert test["num_ranks"] == 2 * metrics["split"]["test"] > 0
        assert 0 < test["mrr"] <= 1 and 0 <= test["hits_at_1"] <= test["hits_at_3"] <= test["hits_at_10"] <= 1
    entities, relations = read_embeddings(people_embeddings["gnn"], people_graph)
    assert entities.shape == (people_graph.num_entities, 8)
    assert relations.shape == (2 * people_graph.num_relations, 8)
    assert np.all(np.isfinite(entities)) and entities.std() > 0


def test_embeddings_initialize_the_encoder_by_entity_name(people_embeddings, people_graph):
    # A smaller graph (as the knowledge method gets: unknown facts removed) has other ids; rows follow names.
    smaller = people_graph.without(people_graph.triples[:5])
    encoder = KnowledgeGraphEncoder(smaller, embedding_dim=8)
    encoder.build()
    initialize_encoder(encoder, smaller, people_embeddings["transe"])
    full_entities, full_relations = read_embeddings(people_embeddings["transe"], people_graph)
    table = encoder.entity_embeddings.numpy()
    assert np.all(table[0] == 0)
    for entity in smaller.entities[:10]:
        np.testing.assert_allclose(table[smaller.entity_id(entity) + 1], full_entities[people_graph.entity_id(entity)])
    np.testing.assert_allclose(encoder.relation_embeddings.numpy(), full_relations)


def test_embeddings_that_do_not_fit_the_graph_are_refused(people_embeddings, people_graph):
    other = KnowledgeGraph([("Atlantis", "capital", "Poseidonia")])
    encoder = KnowledgeGraphEncoder(other, embedding_dim=8)
    with pytest.raises(KfineError, match="missing .first: 'Atlantis'.; the embeddings were trained on another"):
        initialize_encoder(encoder, other, people_embeddings["gnn"])
    wider = KnowledgeGraphEncoder(people_graph, embedding_dim=16)
    with pytest.raises(KfineError, match="8-dimensional embeddings, but the model's KG encoder has embedding_dim=16"):
        initialize_encoder(wider, people_graph, people_embeddings["gnn"])
    with pytest.raises(KfineError, match="no .*entities.txt"):
        initialize_encoder(wider, people_graph, str(people_embeddings["metrics"]) + "-missing")


def test_stage_failure_is_reported_as_a_kfine_error(tmp_path):
    with pytest.raises(KfineError, match="--triples: no such file"):
        kfine.graph.run_stage(["embed", "--triples", str(tmp_path / "none.tsv"), "--out", str(tmp_path / "out")])


def test_kfine_kg_runs_the_stage_in_its_own_process_and_reports_bad_input_on_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "kfine.cli", "kg", "import", str(tmp_path),
                             "--out", str(tmp_path / "kg")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"kfine: error: {tmp_path}: no schema.pbtxt: not a TF-GNN graph directory")


@pytest.mark.slow
def test_beam_sampler_keeps_the_one_hop_facts_of_the_entities_a_corpus_mentions(tmp_path):
    files = default_kg_files()
    graph = KnowledgeGraph.from_files(files["triples"], files["aliases"])
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Andorra la Vella is the capital of Andorra.\nWhat currency does Malta use?\n", encoding="utf-8")
    seeds = {"Andorra la Vella", "Andorra", "Malta"}
    expected = {triple for triple in graph.triples if triple[0] in seeds or triple[2] in seeds}
    sample_size = 64
    # Every seed has fewer facts each way than the sample size, so sampling keeps them all.
    for seed in seeds:
        assert sum(triple[0] == seed for triple in expected) <= sample_size
        assert sum(triple[2] == seed for triple in expected) <= sample_size
    sampled = kfine.graph.sample(graph, str(corpus), str(tmp_path / "sample"), hops=1, sample_size=sample_size)
    assert set(sampled.triples) == expected
    assert {pair for pair in graph.alias_pairs if pair[0] in seeds} <= set(sampled.alias_pairs)
    summary = json.loads((tmp_path / "sample" / "sample.json").read_text(encoding="utf-8"))
    assert summary["seeds"] == 3 and summary["subgraphs"] == 3
