"""KG scaling: load + index + one encoder forward pass on synthetic KGs of growing size.

A synthetic KG copies the bundled KG's shape: as many entities per triple,
each entity's out-degree drawn from the bundled out-degrees, objects drawn
in proportion to in-degrees drawn from the bundled in-degrees (so hubs such
as continents and time zones stay hubs), relations in the bundled
proportions. Each size runs in a fresh process, so its peak memory is its
own.
"""

import concurrent.futures
import multiprocessing
import os
import resource
import tempfile
import time

import numpy as np

from kfine.knowledge.formats import write_triples
from kfine.perf.timing import load_average

# Entity vectors as wide as the injection layer's default `entity_dim`.
EMBEDDING_DIM = 64


def synthetic_triples(graph, num_triples, seed=0):
    """About `num_triples` distinct triples shaped like `graph` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    subjects, relations, objects = (column.astype(np.int64) for column in graph.adjacency())
    out_degrees = np.bincount(subjects, minlength=graph.num_entities)
    in_degrees = np.bincount(objects, minlength=graph.num_entities)
    relation_shares = np.bincount(relations, minlength=graph.num_relations) / len(relations)
    num_entities = max(2, round(num_triples * graph.num_entities / graph.num_triples))
    degrees = rng.choice(out_degrees, size=num_entities)
    weights = rng.choice(in_degrees, size=num_entities).astype(np.float64)
    synthetic_subjects = np.repeat(np.arange(num_entities), degrees)[:num_triples]
    synthetic_objects = rng.choice(num_entities, size=len(synthetic_subjects), p=weights / weights.sum())
    synthetic_relations = rng.choice(graph.num_relations, size=len(synthetic_subjects), p=relation_shares)
    ids = np.unique(np.stack([synthetic_subjects, synthetic_relations, synthetic_objects], axis=1), axis=0)
    names = [f"e{index}" for index in range(num_entities)]
    return [(names[s], graph.relations[r], names[o]) for s, r, o in ids.tolist()]


def _rss_bytes():
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def scale_once(triples_path):
    """Loads the KG at `triples_path`, indexes it and runs one encoder forward pass; runs in its own process.

    Returns:
        dict with the wall and CPU seconds of each phase and their totals,
        and the peak memory the work added to the process (bytes).
    """
    import keras  # Imported here: the parent process need not hold what this one allocates.

    from kfine.knowledge.graph import KnowledgeGraph
    from kfine.knowledge.linker import EntityLinker
    from kfine.layers import KnowledgeGraphEncoder

    keras.ops.zeros((1,))  # TensorFlow's own start-up is not the KG's cost
    baseline = _rss_bytes()
    seconds, cpu_seconds = {}, {}

    def timed(phase, work):
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        seconds[phase], cpu_seconds[phase] = time.perf_counter() - wall, time.process_time() - cpu
        return result

    graph = timed("load", lambda: KnowledgeGraph.from_files(triples_path))

    def index():
        EntityLinker(graph)
        encoder = KnowledgeGraphEncoder(graph, embedding_dim=EMBEDDING_DIM)
        encoder.build()
        return encoder

    encoder = timed("index", index)
    timed("encoder_forward", lambda: keras.ops.convert_to_numpy(encoder.entity_table()))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "num_triples": graph.num_triples,
        "num_entities": graph.num_entities,
        "seconds": seconds,
        "total_seconds": sum(seconds.values()),
        "cpu_seconds": cpu_seconds,
        "total_cpu_seconds": sum(cpu_seconds.values()),
        "peak_added_bytes": max(0, peak - baseline),
    }


def measure_kg_scaling(graph, size):
    """Runs `scale_once` at each of `size.kg_sizes`; returns `(ratios, raw)` with the log-log slope.

    Args:
        graph: `KnowledgeGraph` whose shape the synthetic KGs copy (the bundled one).
        size: `PerfSize` (`kg_sizes`).
    """
    context = multiprocessing.get_context("spawn")
    runs = []
    with tempfile.TemporaryDirectory(prefix="kfine-perf-kg-") as directory:
        for num_triples in size.kg_sizes:
            path = os.path.join(directory, f"triples_{num_triples}.tsv")
            write_triples(path, synthetic_triples(graph, num_triples))
            load_before = load_average()
            with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                run = pool.submit(scale_once, path).result()
            run["bytes_per_triple"] = run["peak_added_bytes"] / run["num_triples"]
            run["load"] = [load_before, load_average()]
            runs.append(run)
    log_triples = np.log([run["num_triples"] for run in runs])
    # The slope of CPU seconds: the work's growth, which a shared machine's load does not bend.
    slope = float(np.polyfit(log_triples, np.log([run["total_cpu_seconds"] for run in runs]), 1)[0])
    wall_slope = float(np.polyfit(log_triples, np.log([run["total_seconds"] for run in runs]), 1)[0])
    return {"kg_scaling_slope": slope}, {"embedding_dim": EMBEDDING_DIM, "wall_slope": wall_slope, "sizes": runs}
