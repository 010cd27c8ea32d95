"""k-hop subgraphs around seed entities with TF-GNN's Beam sampler.

The exported unigraph tables (`graph_tensor.export_graph`) are read by
TF-GNN's Beam pipeline (`tensorflow_gnn.experimental.sampler.beam`, the
`tfgnn_sampler` tool): from every seed entity it samples up to
`sample_size` facts per hop along both directions of `fact` (objects and
subjects), for `hops` hops, plus the entities' aliases, and writes one
GraphTensor per seed. `import_graph` unites them into the sampled KG.
The pipeline runs on Beam's DirectRunner here; pass Beam pipeline options
(`--runner=DataflowRunner --project=... --region=... --temp_location=gs://...`,
`--runner=FlinkRunner --flink_master=...`, `--runner=SparkRunner ...`) to run
it on a cluster.
"""

import os

import apache_beam as beam
import tensorflow as tf
import tensorflow_gnn as tfgnn
from apache_beam.options.pipeline_options import PipelineOptions
from tensorflow_gnn.data import unigraph
from tensorflow_gnn.experimental import sampler
from tensorflow_gnn.experimental.sampler.beam import executor_lib, unigraph_utils
from tensorflow_gnn.experimental.sampler.beam.sampler import get_sampling_model, save_artifacts
from tensorflow_gnn.sampler import sampling_spec_builder

from kfine.errors import KfineError
from kfine.graph.graph_tensor import ALIAS_OF, ENTITY, FACT, GRAPH_FILE, SCHEMA_FILE, read_schema
from kfine.graph.graph_tensor import REVERSED_SUFFIX as REVERSED
from kfine.io import atomic_directory

SEEDS_FILE = "nodes-seeds.tfrecords"


def sampling_schema(schema):
    """`schema` plus reversed `fact` and `alias_of` edge sets (same tables), so sampling can walk both ways."""
    result = tfgnn.GraphSchema()
    result.CopyFrom(schema)
    for name in (FACT, ALIAS_OF):
        reversed_set = result.edge_sets[name + REVERSED]
        reversed_set.CopyFrom(schema.edge_sets[name])
        reversed_set.source, reversed_set.target = schema.edge_sets[name].target, schema.edge_sets[name].source
        reversed_set.metadata.extra.add(key="edge_type", value="reversed")
    return result


def sampling_spec(schema, hops, sample_size):
    """Up to `sample_size` facts each way per hop from the seed entity, for `hops` hops, and its aliases."""
    builder = sampling_spec_builder.SamplingSpecBuilder(
        schema, default_strategy=sampling_spec_builder.SamplingStrategy.RANDOM_UNIFORM
    )
    seed = builder.seed(ENTITY)
    frontier = builder.join([seed])
    for _ in range(hops):
        frontier = builder.join([frontier.sample(sample_size, FACT), frontier.sample(sample_size, FACT + REVERSED)])
    seed.sample(sample_size, ALIAS_OF + REVERSED)
    return builder.build()


def sample_subgraphs(graph_dir, seeds, out_dir, hops=1, sample_size=64, pipeline_args=()):
    """Runs the Beam sampler on an exported graph and writes the samples as a graph directory.

    Args:
        graph_dir: str. Written by `export_graph` (its unigraph tables are read).
        seeds: list of str. Entity names to sample around.
        out_dir: str. Receives `schema.pbtxt` and `graph.tfrecords` (one
            GraphTensor per seed), readable by `import_graph`.
        hops: int. Hops from each seed.
        sample_size: int. Most facts sampled per entity, direction and hop.
        pipeline_args: list of str. Beam pipeline options (the runner and its flags).

    Returns:
        The number of subgraphs written.
    """
    if not seeds:
        raise KfineError("no seed entities: the corpus mentions no entity of the knowledge graph")
    schema = sampling_schema(read_schema(graph_dir))
    spec = sampling_spec(schema, hops, sample_size)
    model, layers_mapping = get_sampling_model(schema, spec)
    program, artifacts = sampler.create_program(model)
    with atomic_directory(out_dir) as staging:
        artifacts_path = os.path.join(staging, "artifacts")
        save_artifacts(artifacts, artifacts_path)
        seeds_path = os.path.join(staging, SEEDS_FILE)
        with tf.io.TFRecordWriter(seeds_path) as writer:
            for name in seeds:
                example = tf.train.Example()
                example.features.feature["#id"].bytes_list.value.append(name.encode("utf-8"))
                writer.write(example.SerializeToString())
        output = os.path.join(staging, GRAPH_FILE)
        with beam.Pipeline(options=PipelineOptions(list(pipeline_args))) as root:
            feeds = root | unigraph_utils.ReadAndConvertUnigraph(schema, os.path.abspath(graph_dir))
            feeds.update({layer: feeds[edge_set] for layer, edge_set in layers_mapping.items()})
            inputs = {"Input": unigraph_utils.read_seeds(root, seeds_path)}
            examples = executor_lib.execute(program, inputs, feeds=feeds, artifacts_path=artifacts_path)
            _ = examples | beam.Values() | unigraph.WriteTable(output)
        tfgnn.write_schema(schema, os.path.join(staging, SCHEMA_FILE))
        count = sum(1 for _ in tf.data.TFRecordDataset(output))
    return count
