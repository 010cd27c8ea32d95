"""The `kfine` command line: thin subcommands over the public API.

Bad input of any kind prints one line, `kfine: error: ...`, and exits with
status 2; nothing half-written is left behind (artifacts are written
atomically).
"""

import argparse
import logging
import os
import shlex
import sys

from kfine.errors import KfineError

class _Parser(argparse.ArgumentParser):
    """Reports a bad flag on one line (`kfine bench: error: ...`), exit 2, like every kfine error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_kg_arguments(parser):
    group = parser.add_argument_group("knowledge graph (generic format; default: the bundled geonames KG)")
    group.add_argument("--triples", help="TSV/CSV with header subject,relation,object, or JSONL")
    group.add_argument("--templates", help="JSON {relation: [template, ...]}")
    group.add_argument("--aliases", help="optional TSV/CSV with header entity,alias")


def _kg_files(args):
    """The KG files named by the flags, or the bundled KG's."""
    if args.triples is None:
        if args.templates or args.aliases:
            raise KfineError("--templates/--aliases given without --triples")
        from kfine.datasets.geonames import default_kg_files

        return default_kg_files()
    if args.templates is None:
        raise KfineError("--triples needs --templates (JSON {relation: [template, ...]})")
    for flag in ("triples", "templates", "aliases"):
        path = getattr(args, flag)
        if path is not None and not os.path.isfile(path):
            raise KfineError(f"--{flag}: no such file: {path}")
    return {"triples": args.triples, "templates": args.templates, "aliases": args.aliases}


def _pretrained(args):
    from kfine.models.shipped import shipped_model_path

    return args.model if args.model else shipped_model_path()


def _command_line():
    return "kfine " + " ".join(shlex.quote(argument) for argument in sys.argv[1:])


def cmd_data(args):
    from kfine.datasets.geonames import build_geonames, write_geonames

    paths = write_geonames(args.out)
    graph, _ = build_geonames()
    stats = graph.stats()
    print(f"wrote {paths['triples']}, {paths['templates']}, {paths['aliases']}")
    print(f"{stats['num_entities']} entities, {stats['num_relations']} relations, "
          f"{stats['num_triples']} triples, {stats['num_aliases']} aliases")


def cmd_pretrain(args):
    from kfine.evaluation.task import FactTask
    from kfine.training.pretrain import pretrain

    task = FactTask.from_files(**_kg_files(args), split_seed=args.split_seed)
    log_dir = args.logdir or os.path.join("runs", "pretrain")
    print(f"pretraining on {task.knowledge_graph!r}; TensorBoard logs in {log_dir}")
    metadata = pretrain(task, args.out, seed=args.seed, epochs=args.epochs, log_dir=log_dir,
                        command=_command_line(), verbose=1 if sys.stdout.isatty() else 2)
    print(f"saved {args.out}: final loss {metadata['final_loss']}, "
          f"seen-fact accuracy {metadata['seen_fact_accuracy']} in {metadata['training_seconds']} s")


def cmd_generate(args):
    from kfine.models.generation import Generator, make_sampler
    from kfine.models.loading import load_model

    from kfine.models.loading import load_metadata
    from kfine.training.finetune import FINE_TUNED_KIND, load_fine_tuned

    sampler = make_sampler(args.sampler, k=args.top_k, p=args.top_p, seed=args.seed)
    path = _pretrained(args)
    if os.path.isdir(path) and load_metadata(path).get("kind") == FINE_TUNED_KIND:
        generator = load_fine_tuned(path)
        generator.sampler = sampler
    else:
        model = load_model(path)
        generator = Generator(model, model.tokenizer, sampler=sampler)
    for prompt in args.prompts:
        if not prompt.strip():
            raise KfineError("prompt: empty text; give the beginning of a sentence")
        print(f"{prompt} {generator.generate([prompt], args.max_new_tokens)[0]}")


def cmd_finetune(args):
    from kfine.evaluation.task import QUICK, FULL, FactTask
    from kfine.training.finetune import fine_tune, results_lines
    from kfine.training.methods import get_method

    get_method(args.method)
    task = FactTask.from_files(**_kg_files(args), size=QUICK if args.quick else FULL)
    metadata = fine_tune(task, _pretrained(args), args.method, args.out, seed=args.seed, quick=args.quick,
                         log_dir=args.logdir, verbose=1 if sys.stdout.isatty() else 2, command=_command_line(),
                         init_embeddings=args.init_embeddings)
    print(f"saved {args.out} ({args.method}, seed {args.seed}); greedy answers per split:")
    print("\n".join(results_lines(metadata)))


def cmd_bench(args):
    from kfine.evaluation.bench import run_bench
    from kfine.training.methods import get_method

    methods = [name.strip() for name in args.methods.split(",") if name.strip()]
    if not methods:
        raise KfineError("--methods: give at least one method name")
    for name in methods:
        get_method(name)
    files = _kg_files(args)
    results = run_bench(files, _pretrained(args), methods, args.seeds, args.out, quick=args.quick,
                        init_embeddings=args.init_embeddings)
    with open(os.path.join(args.out, "results.md"), encoding="utf-8") as stream:
        print(stream.read())
    print(f"wrote {args.out}/results.json, results.md, results.png and tensorboard/ "
          f"({len(results['results'])} rows)")


def cmd_kg(args):
    from kfine.graph import run_stage
    from kfine.graph.commands import stage_argv

    # TF-GNN needs Keras 2 as tf.keras; this process already has Keras 3, so the stage runs in its own.
    run_stage(stage_argv(args))


def build_parser():
    parser = _Parser(prog="kfine", description="Fine-tune Keras language models without hallucinating.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="write a bundled dataset in the generic KG format")
    data.add_argument("dataset", choices=["geonames"], help="the dataset to write")
    data.add_argument("--out", required=True, help="output directory")
    data.set_defaults(run=cmd_data)

    pretrain = commands.add_parser("pretrain", help="train the causal LM on the pretrain split of a KG")
    _add_kg_arguments(pretrain)
    pretrain.add_argument("--out", required=True, help="model directory to write")
    pretrain.add_argument("--epochs", type=_positive_int, default=40)
    pretrain.add_argument("--seed", type=int, default=0)
    pretrain.add_argument("--split-seed", type=int, default=0, help="seed of the subject split")
    pretrain.add_argument("--logdir", help="TensorBoard log directory (default runs/pretrain)")
    pretrain.set_defaults(run=cmd_pretrain)

    generate = commands.add_parser("generate", help="complete prompts with a model")
    generate.add_argument("prompts", nargs="+", help="prompt text(s)")
    generate.add_argument("--model", help="model directory or .keras file (default: the shipped model)")
    generate.add_argument("--sampler", default="greedy", choices=["greedy", "top_k", "top_p"])
    generate.add_argument("--top-k", type=_positive_int, default=5)
    generate.add_argument("--top-p", type=float, default=0.9)
    generate.add_argument("--max-new-tokens", type=_positive_int, default=16)
    generate.add_argument("--seed", type=int, default=None)
    generate.set_defaults(run=cmd_generate)

    finetune = commands.add_parser("finetune", help="fine-tune the pretrained model with one method and save it")
    _add_kg_arguments(finetune)
    finetune.add_argument("--method", default="knowledge", help="a registered method (baseline, knowledge)")
    finetune.add_argument("--model", help="pretrained model directory (default: the shipped model)")
    finetune.add_argument("--out", required=True, help="directory for the fine-tuned model and its KG")
    finetune.add_argument("--seed", type=int, default=0)
    finetune.add_argument("--quick", action="store_true", help="the bench's quick configuration")
    finetune.add_argument("--logdir", help="TensorBoard log directory (default OUT-logs)")
    finetune.add_argument("--init-embeddings", metavar="DIR", help="KG embeddings from `kfine kg embed` (e.g. OUT/gnn) "
                          "that initialize the knowledge method's entity and relation tables")
    finetune.set_defaults(run=cmd_finetune)

    bench = commands.add_parser("bench", help="the hallucination benchmark over methods and seeds")
    _add_kg_arguments(bench)
    bench.add_argument("--model", help="pretrained model directory (default: the shipped model)")
    bench.add_argument("--methods", default="baseline", help="comma-separated method names")
    bench.add_argument("--seeds", type=_positive_int, default=3)
    bench.add_argument("--out", required=True, help="output directory")
    bench.add_argument("--quick", action="store_true", help="subsample subjects and prompts (minutes on a CPU)")
    bench.add_argument("--init-embeddings", metavar="DIR", help="KG embeddings from `kfine kg embed` for the knowledge method")
    bench.set_defaults(run=cmd_bench)

    from kfine.graph.commands import add_commands

    kg = commands.add_parser("kg", help="the TF-GNN graph stage: export|import|embed|sample (own process)")
    add_commands(kg)
    kg.set_defaults(run=cmd_kg)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notices are not the user's concern
    try:
        args.run(args)
    except KfineError as error:
        print(f"kfine: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kfine: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
