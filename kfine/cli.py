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


def _positive_ints(text):
    """A comma-separated list of positive integers, e.g. `1,100,1000`."""
    return [_positive_int(part.strip()) for part in text.split(",") if part.strip()] or _positive_int(text)


def _probability(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a probability in (0, 1], got {text!r}")
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


def _add_strategy_arguments(parser):
    from kfine.training.strategy import STRATEGIES

    group = parser.add_argument_group("distribution (see README: several GPUs, hosts, TPU)")
    group.add_argument("--strategy", default="default", choices=STRATEGIES,
                       help="tf.distribute strategy: default (one device), mirrored (all GPUs of this machine), "
                            "multiworker (hosts named by TF_CONFIG), tpu")
    group.add_argument("--tpu",
                       help="with --strategy tpu: the TPU name or grpc:// address (default: TPU_NAME or local)")


def _strategy(args):
    from kfine.training.strategy import make_strategy

    if args.tpu and args.strategy != "tpu":
        raise KfineError("--tpu is only used with --strategy tpu")
    return make_strategy(args.strategy, tpu=args.tpu)


def _check_out(path):
    """Refuses an --out that names an existing file: outputs are directories."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise KfineError(f"--out: {path} is a file; give a directory path")


def _pretrained(args, shipped=None):
    """`--model`, else the shipped model `shipped` (default: the shipped default)."""
    from kfine.models.shipped import SHIPPED_MODEL, shipped_model_path

    return args.model if args.model else shipped_model_path(shipped or SHIPPED_MODEL)


def _command_line():
    return "kfine " + " ".join(shlex.quote(argument) for argument in sys.argv[1:])


def cmd_data(args):
    from kfine.datasets import DATASETS

    build, write = DATASETS[args.dataset]
    paths = write(args.out)
    graph, _ = build()
    stats = graph.stats()
    print("wrote " + ", ".join(paths.values()))
    print(f"{stats['num_entities']} entities, {stats['num_relations']} relations, "
          f"{stats['num_triples']} triples, {stats['num_aliases']} aliases")


def cmd_pretrain(args):
    from kfine.knowledge.task import FactTask
    from kfine.training.pretrain import pretrain
    from kfine.training.pretrain_preset import pretrain_preset

    _check_out(args.out)
    task = FactTask.from_files(**_kg_files(args), split_seed=args.split_seed)
    log_dir = args.logdir or os.path.join("runs", "pretrain")
    print(f"pretraining a {args.architecture} model on {task.knowledge_graph!r}; TensorBoard logs in {log_dir}")
    options = dict(seed=args.seed, epochs=args.epochs, log_dir=log_dir, command=_command_line(),
                   verbose=1 if sys.stdout.isatty() else 2, corpus_templates=args.corpus_templates,
                   vocabulary_size=args.vocabulary_size)
    if args.architecture == "kfine":
        metadata = pretrain(task, args.out, **options)
    else:
        metadata = pretrain_preset(task, args.out, architecture=args.architecture, **options)
    print(f"saved {args.out}: final loss {metadata['final_loss']}, "
          f"seen-fact accuracy {metadata['seen_fact_accuracy']} in {metadata['training_seconds']} s")


def cmd_generate(args):
    from kfine.knowledge.graph import KnowledgeGraph
    from kfine.knowledge.linker import EntityLinker
    from kfine.models.generation import Generator, make_sampler
    from kfine.models.loading import load_model
    from kfine.training.finetune import is_fine_tuned, load_fine_tuned, load_fine_tuned_graph

    sampler = make_sampler(args.sampler, k=args.top_k, p=args.top_p, seed=args.seed)
    for prompt in args.prompts:
        if not prompt.strip():
            raise KfineError("prompt: empty text; give the beginning of a sentence")
    path = _pretrained(args)
    if is_fine_tuned(path):
        graph = load_fine_tuned_graph(path)
        generator = load_fine_tuned(path, graph)
        generator.sampler = sampler
        # A fine-tuned model answers about its KG's entities; say so rather than make something up.
        linker = EntityLinker(graph)
        for prompt in args.prompts:
            if not linker.link(prompt):
                raise KfineError(f"prompt {prompt[:60]!r}: names no entity of the model's knowledge graph "
                                 f"({graph.num_entities} entities, e.g. {graph.entities[0]!r})")
    else:
        model = load_model(path)
        generator = Generator(model, model.tokenizer, sampler=sampler)
    if args.kg is not None:
        if not hasattr(generator, "update_knowledge"):
            raise KfineError(f"--kg: {path} reads no knowledge graph it can update (only models fine-tuned with "
                             "knowledge or knowledge_add do)")
        if not os.path.exists(args.kg):
            raise KfineError(f"--kg: no such file or directory: {args.kg}")
        generator.update_knowledge(KnowledgeGraph.load(args.kg) if os.path.isdir(args.kg)
                                   else KnowledgeGraph.from_files(args.kg))
    if args.min_confidence is None:
        completions = [generator.generate([prompt], args.max_new_tokens)[0] for prompt in args.prompts]
    else:
        from kfine.knowledge.names import DEFAULT_ABSTENTION

        # Below the threshold the answer is not worth giving: abstain, as the metrics count it.
        completions = []
        for prompt in args.prompts:
            texts, confidences = generator.generate_with_confidence([prompt], args.max_new_tokens)
            completions.append(texts[0] if confidences[0] >= args.min_confidence else DEFAULT_ABSTENTION)
    for prompt, completion in zip(args.prompts, completions):
        print(f"{prompt} {completion}")


def cmd_finetune(args):
    from kfine.knowledge.task import FULL, QUICK, FactTask
    from kfine.models.loading import check_model_path
    from kfine.training.finetune import fine_tune, results_lines
    from kfine.training.methods import get_method

    strategy = _strategy(args)  # first: multiworker must start before TensorFlow runs an op
    get_method(args.method)
    options = {}
    if args.checker is not None:
        if not args.method.startswith("factcheck"):
            raise KfineError(f"--checker applies to the factcheck methods, not to --method {args.method}")
        options["checker"] = args.checker
    _check_out(args.out)
    pretrained = _pretrained(args)
    check_model_path(pretrained)
    task = FactTask.from_files(**_kg_files(args), size=QUICK if args.quick else FULL)
    metadata = fine_tune(task, pretrained, args.method, args.out, seed=args.seed, quick=args.quick,
                         log_dir=args.logdir, verbose=1 if sys.stdout.isatty() else 2, command=_command_line(),
                         strategy=strategy, backup_dir=args.backup_dir, checkpoint_every=args.checkpoint_every,
                         method_options=options, init_embeddings=args.init_embeddings, dtype=args.dtype,
                         lora_rank=args.lora_rank)
    print(f"saved {args.out} ({args.method}, seed {args.seed}); greedy answers per split:")
    print("\n".join(results_lines(metadata)))


def cmd_check(args):
    from kfine.training.finetune import load_fact_checkers

    checkers = load_fact_checkers(args.model)
    for sentence in args.sentences:
        if not sentence.strip():
            raise KfineError("sentence: empty text; give a sentence to check")
        for name, checker in checkers:
            verdict = checker.check([sentence])[0]
            probability = "–" if verdict.probability is None else f"{verdict.probability:.3f}"
            print(f"{name:>6}: {verdict.label:<13} P(supported)={probability}  {sentence}")


def cmd_bench(args):
    if args.perf:
        return cmd_perf(args)
    if args.runs != 1:
        raise KfineError("--runs: repeats the speed measurement; use it with --perf")
    from kfine.bench import run_bench
    from kfine.models.loading import check_model_path
    from kfine.training.methods import get_method

    strategy = _strategy(args)
    methods = [name.strip() for name in args.methods.split(",") if name.strip()]
    if not methods:
        raise KfineError("--methods: give at least one method name")
    for name in methods:
        get_method(name)
    _check_out(args.out)
    files = _kg_files(args)
    pretrained = _pretrained(args)
    check_model_path(pretrained)
    results = run_bench(files, pretrained, methods, args.seeds, args.out, quick=args.quick, strategy=strategy,
                        constrained_decoding=args.constrained_decoding, init_embeddings=args.init_embeddings,
                        edits=args.edits)
    with open(os.path.join(args.out, "results.md"), encoding="utf-8") as stream:
        print(stream.read())
    print(f"wrote {args.out}/results.json, results.md, results.png and tensorboard/ "
          f"({len(results['results'])} rows)")


def cmd_perf(args):
    from kfine.models.shipped import WORDPIECE_MODEL
    from kfine.perf.harness import run_perf, run_perf_runs

    _check_out(args.out)
    if args.runs > 1:
        # --perf times kfine's own LM (its ratios compare it with keras-hub's), unless --model.
        results = run_perf_runs(_pretrained(args, WORDPIECE_MODEL), args.out, args.runs, quick=args.quick)
    else:
        results = run_perf(_pretrained(args, WORDPIECE_MODEL), args.out, quick=args.quick)
    with open(os.path.join(args.out, "perf.md"), encoding="utf-8") as stream:
        print(stream.read())
    print(f"wrote {args.out}/perf.json and perf.md ({len(results['ratios'])} ratios)")


def cmd_kg(args):
    from kfine.graph import run_stage
    from kfine.graph.commands import stage_argv

    # TF-GNN needs Keras 2 as tf.keras; this process already has Keras 3, so the stage runs in its own.
    run_stage(stage_argv(args))


def build_parser():
    parser = _Parser(prog="kfine", description="Fine-tune Keras language models without hallucinating.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="write a bundled dataset in the generic KG format")
    data.add_argument("dataset", choices=["geonames", "languages"],
                      help="geonames: countries and cities; languages: CLDR languages (another domain)")
    data.add_argument("--out", required=True, help="output directory")
    data.set_defaults(run=cmd_data)

    pretrain = commands.add_parser("pretrain", help="train the causal LM on the pretrain split of a KG")
    _add_kg_arguments(pretrain)
    pretrain.add_argument("--out", required=True, help="model directory to write")
    pretrain.add_argument("--epochs", type=_positive_int, default=40)
    pretrain.add_argument("--seed", type=int, default=0)
    pretrain.add_argument("--split-seed", type=int, default=0, help="seed of the subject split")
    pretrain.add_argument("--logdir", help="TensorBoard log directory (default runs/pretrain)")
    pretrain.add_argument("--corpus-templates", default="all", choices=["all", "training"],
                          help="templates of the corpus: all (default, the reserved paraphrase ones included) "
                               "or training (the paraphrase wording stays new to the LM)")
    pretrain.add_argument("--architecture", default="kfine", choices=["kfine", "gpt2", "llama", "gemma"],
                          help="kfine (its own LM, WordPiece; default) or a keras-hub CausalLM written as a preset "
                               "that keras_hub.models.CausalLM.from_preset loads without kfine: gpt2 (byte-level "
                               "BPE), llama or gemma (SentencePiece); every tokenizer is learned from the corpus")
    pretrain.add_argument("--vocabulary-size", type=_positive_int, default=2000,
                          help="tokenizer vocabulary size (at least 300 for the keras-hub architectures)")
    pretrain.set_defaults(run=cmd_pretrain)

    generate = commands.add_parser("generate", help="complete prompts with a model")
    generate.add_argument("prompts", nargs="+", help="prompt text(s)")
    generate.add_argument("--model", help="model directory, .keras file or keras-hub preset (folder or handle; "
                                              "default: the shipped model)")
    generate.add_argument("--sampler", default="greedy", choices=["greedy", "top_k", "top_p"])
    generate.add_argument("--top-k", type=_positive_int, default=5)
    generate.add_argument("--top-p", type=_probability, default=0.9)
    generate.add_argument("--max-new-tokens", type=_positive_int, default=16)
    generate.add_argument("--seed", type=int, default=None)
    generate.add_argument("--min-confidence", type=_probability, default=None, metavar="P",
                          help="print the abstention phrase when the model's confidence in its answer is below P")
    generate.add_argument("--kg", metavar="PATH",
                          help="an edited knowledge graph (triples file or saved KG directory) the model answers "
                               "from instead of its own, with no training (models fine-tuned with knowledge or "
                               "knowledge_add)")
    generate.set_defaults(run=cmd_generate)

    finetune = commands.add_parser("finetune", help="fine-tune the pretrained model with one method and save it")
    _add_kg_arguments(finetune)
    finetune.add_argument("--method", default="knowledge",
                          help="a registered method (baseline, knowledge, adversarial)")
    finetune.add_argument("--model", help="pretrained model directory or keras-hub preset (folder or handle; "
                                              "default: the shipped model)")
    finetune.add_argument("--out", required=True, help="directory for the fine-tuned model and its KG")
    finetune.add_argument("--seed", type=int, default=0)
    finetune.add_argument("--quick", action="store_true", help="the bench's quick configuration")
    finetune.add_argument("--logdir", help="TensorBoard log directory (default OUT-logs)")
    _add_strategy_arguments(finetune)
    finetune.add_argument("--backup-dir",
                          help="training state backed up for resuming after a crash (default OUT-backup)")
    finetune.add_argument("--checkpoint-every", type=_positive_int, metavar="STEPS",
                          help="back up every STEPS batches as well as every epoch")
    finetune.add_argument("--dtype", choices=["float32", "bfloat16", "mixed_bfloat16"],
                          help="a keras-hub preset's dtype policy (default: the preset's own)")
    finetune.add_argument("--lora-rank", type=_positive_int, metavar="R",
                          help="train rank-R LoRA updates of a keras-hub backbone (merged into the saved model)")
    finetune.add_argument("--checker", choices=["neural", "kg"],
                          help="factcheck methods: the fact checker whose verdicts are fed back (default neural)")
    finetune.add_argument("--init-embeddings", metavar="DIR", help="KG embeddings from `kfine kg embed` (e.g. OUT/gnn) "
                          "that initialize the knowledge method's entity and relation tables")
    finetune.set_defaults(run=cmd_finetune)

    check = commands.add_parser("check", help="fact-check sentences: verdict and P(supported)")
    check.add_argument("sentences", nargs="+", help="sentence(s) to check")
    check.add_argument("--model", required=True,
                       help="a `kfine finetune --method factcheck` output (its neural checker, if any, and "
                            "its KG), or a fact checker directory")
    check.set_defaults(run=cmd_check)

    bench = commands.add_parser("bench", help="the hallucination benchmark over methods and seeds")
    _add_kg_arguments(bench)
    bench.add_argument("--model", help="pretrained model directory or keras-hub preset (folder or handle; "
                                           "default: the shipped model)")
    bench.add_argument("--methods", default="baseline", help="comma-separated method names")
    bench.add_argument("--seeds", type=_positive_int, default=3)
    bench.add_argument("--out", required=True, help="output directory")
    bench.add_argument("--quick", action="store_true", help="subsample subjects and prompts (minutes on a CPU)")
    bench.add_argument("--constrained-decoding", action="store_true",
                       help="also evaluate every method with KG-constrained decoding (rows METHOD+constrained)")
    _add_strategy_arguments(bench)
    bench.add_argument("--perf", action="store_true",
                       help="measure speed instead (training, linking, KG scaling, generation): OUT/perf.json, perf.md")
    bench.add_argument("--runs", type=_positive_int, default=1,
                       help="with --perf: measure N times, each in a fresh process, and report the median of "
                            "each ratio")
    bench.add_argument("--init-embeddings", metavar="DIR",
                       help="KG embeddings from `kfine kg embed` for the knowledge method")
    bench.add_argument("--edits", type=_positive_ints, default=[], metavar="N,N,...",
                       help="after fine-tuning, replace N facts of the model's KG by counterfactual ones, no training "
                            "(split edit-N: efficacy, paraphrase efficacy, neighbourhood), e.g. 1,100,1000")
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
