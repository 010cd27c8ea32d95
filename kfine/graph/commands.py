"""The graph stage's subcommands: `kfine kg export|import|embed|sample`.

The parser is built here, without TensorFlow, so the `kfine` CLI can show
the stage's help and check its flags before it spawns the stage process
(`python -m kfine.graph`, which sets `TF_USE_LEGACY_KERAS=1` first). The
commands themselves run only in that process.
"""

import json
import os
import shlex

from kfine.errors import KfineError

# name -> (help, [(flags, keyword arguments of add_argument)])
KG_OPTIONS = [
    (("--triples",), {"help": "TSV/CSV with header subject,relation,object, or JSONL (default: the bundled KG)"}),
    (("--aliases",), {"help": "optional TSV/CSV with header entity,alias"}),
]
COMMANDS = {
    "export": ("write a KG as a TF-GNN GraphTensor (schema.pbtxt + tf.Example records)", [
        *KG_OPTIONS,
        (("--out",), {"required": True, "help": "graph directory to write"}),
    ]),
    "import": ("read a TF-GNN graph directory back into a KG directory", [
        (("graph_dir",), {"metavar": "DIR", "help": "directory with schema.pbtxt and graph.tfrecords"}),
        (("--out",), {"required": True, "help": "KG directory to write (triples.tsv, aliases.tsv, graph.json)"}),
    ]),
    "embed": ("train GNN and TransE KG embeddings by link prediction; report filtered MRR / Hits@k", [
        *KG_OPTIONS,
        (("--out",), {"required": True, "help": "directory for the gnn/, transe/ (and distmult/) embeddings "
                      "and metrics.json"}),
        (("--dim",), {"type": int, "default": 64, "help": "embedding size (the knowledge method's is 64)"}),
        (("--layers",), {"type": int, "default": 1, "help": "GNN message-passing rounds"}),
        (("--decoder",), {"default": "distmult", "choices": ["transe", "distmult"], "help": "the GNN's decoder"}),
        (("--epochs",), {"type": int, "default": 30}),
        (("--held-out",), {"type": float, "default": 0.05, "help": "fraction of facts in each of valid and test"}),
        (("--seed",), {"type": int, "default": 0}),
    ]),
    "sample": ("k-hop subgraphs around the entities a corpus mentions, with TF-GNN's Beam sampler", [
        *KG_OPTIONS,
        (("--corpus",), {"required": True, "help": "text file; the KG entities it mentions are the seeds"}),
        (("--out",), {"required": True, "help": "directory for the samples and the sampled KG (knowledge_graph/)"}),
        (("--hops",), {"type": int, "default": 1}),
        (("--sample-size",), {"type": int, "default": 64, "help": "most facts per entity, direction and hop"}),
        (("--beam-args",), {"default": "--runner=DirectRunner", "help": "Beam pipeline options, e.g. "
                             "'--runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp'"}),
    ]),
}


def add_commands(parser):
    """Adds the stage's subcommands to `parser` (an `argparse.ArgumentParser`)."""
    commands = parser.add_subparsers(dest="kg_command", required=True, metavar="KG_COMMAND")
    for name, (help_text, options) in COMMANDS.items():
        command = commands.add_parser(name, help=help_text, description=help_text)
        for flags, keywords in options:
            command.add_argument(*flags, **keywords)
    return commands


def stage_argv(args):
    """The stage process's argv for parsed `args`: the command and every option given."""
    argv = [args.kg_command]
    for flags, keywords in COMMANDS[args.kg_command][1]:
        dest = keywords.get("dest", flags[0].lstrip("-").replace("-", "_"))
        value = getattr(args, dest)
        if value is None:
            continue
        # `--flag=value`: a value that starts with "-" (Beam options) must not read as a flag.
        argv.append(str(value) if not flags[0].startswith("-") else f"{flags[0]}={value}")
    return argv


def _knowledge_graph(args):
    from kfine.knowledge.graph import KnowledgeGraph

    if args.triples is None:
        if args.aliases:
            raise KfineError("--aliases given without --triples")
        from kfine.datasets.geonames import default_kg_files

        files = default_kg_files()
        return KnowledgeGraph.from_files(files["triples"], files["aliases"], name="geonames")
    for flag in ("triples", "aliases"):
        path = getattr(args, flag)
        if path is not None and not os.path.isfile(path):
            raise KfineError(f"--{flag}: no such file: {path}")
    return KnowledgeGraph.from_files(args.triples, args.aliases)


def _positive(args, *names):
    for name in names:
        value = getattr(args, name)
        if value < 1:
            raise KfineError(f"--{name.replace('_', '-')}: expected a positive integer, got {value}")


def run_export(args):
    from kfine.graph.graph_tensor import export_graph

    graph = _knowledge_graph(args)
    schema = export_graph(graph, args.out)
    print(f"wrote {schema} and the GraphTensor of {graph!r} to {args.out}")


def run_import(args):
    from kfine.graph.graph_tensor import import_graph

    graph = import_graph(args.graph_dir)
    graph.save(args.out)
    print(f"wrote {graph!r} to {args.out} (fingerprint {graph.fingerprint()[:12]})")


def run_embed(args):
    from kfine.graph.embed import embed_knowledge_graph

    _positive(args, "dim", "epochs")
    if args.layers < 1:
        raise KfineError(f"--layers: the GNN needs at least one round, got {args.layers}")
    if not 0 < args.held_out < 0.5:
        raise KfineError(f"--held-out: expected a fraction in (0, 0.5), got {args.held_out}")
    metrics = embed_knowledge_graph(
        _knowledge_graph(args), args.out, dim=args.dim, num_layers=args.layers, decoder=args.decoder,
        epochs=args.epochs, held_out=args.held_out, seed=args.seed, log=print,
    )
    print(metrics_table(metrics))
    print(f"wrote {', '.join(f'{args.out}/{name}' for name in metrics['models'])} "
          "(entity/relation .npy + names) and metrics.json")


def metrics_table(metrics):
    lines = ["| model | test MRR | Hits@1 | Hits@3 | Hits@10 | ranks | train s |", "|---|---|---|---|---|---|---|"]
    for name, row in metrics["models"].items():
        test = row["test"]
        lines.append(f"| {name} ({row['description']}) | {test['mrr']:.3f} | {test['hits_at_1']:.3f} | "
                     f"{test['hits_at_3']:.3f} | {test['hits_at_10']:.3f} | {test['num_ranks']} | "
                     f"{row['train_seconds']:.0f} |")
    return "\n".join(lines)


def run_sample(args):
    from kfine.graph.graph_tensor import export_graph, import_graph
    from kfine.graph.sampling import sample_subgraphs
    from kfine.knowledge.linker import EntityLinker

    _positive(args, "hops", "sample_size")
    graph = _knowledge_graph(args)
    if not os.path.isfile(args.corpus):
        raise KfineError(f"--corpus: no such file: {args.corpus}")
    linker = EntityLinker(graph)
    with open(args.corpus, encoding="utf-8") as stream:
        seeds = sorted({mention.entity for line in stream for mention in linker.link(line)})
    export_dir = os.path.normpath(args.out) + "-graph"
    export_graph(graph, export_dir)
    count = sample_subgraphs(export_dir, seeds, args.out, hops=args.hops, sample_size=args.sample_size,
                             pipeline_args=shlex.split(args.beam_args))
    sampled = import_graph(args.out, name=f"{graph.name}-sample")
    sampled.save(os.path.join(args.out, "knowledge_graph"))
    summary = {"seeds": len(seeds), "subgraphs": count, "entities": sampled.num_entities,
               "triples": sampled.num_triples, "aliases": len(sampled.alias_pairs),
               "of_triples": graph.num_triples}
    with open(os.path.join(args.out, "sample.json"), "w", encoding="utf-8") as stream:
        json.dump(summary, stream, indent=2)
    print(f"{len(seeds)} seed entities -> {count} subgraphs -> {sampled!r} "
          f"({sampled.num_triples} of {graph.num_triples} facts); wrote {args.out}/knowledge_graph")


RUNNERS = {"export": run_export, "import": run_import, "embed": run_embed, "sample": run_sample}
