"""Bad input, table-driven: every malformed input gets one line naming the problem, and leaves nothing behind.

Each case in `CASES` is data:

- `case`: its name (the test id);
- `files`: `{name: content}` written into the case's own folder `$dir`
  first (str, bytes, or the name of a builder in `BUILDERS` for binary
  artifacts such as model files);
- `argv`: a `kfine` command line, run in-process through `kfine.cli.main`,
  which must exit with status 2 and print one line `kfine...: error: ...`
  on stderr and nothing on stdout; or `call`: the name of an API call in
  `API_CALLS`, which must raise a `KfineError` with a one-line message;
- `error`: text the message must contain.

Strings may use `$dir` (the case folder), `$out` (`$dir/out`), `$triples`,
`$templates`, `$aliases` (a good KG), `$model` (a good pretrained model) and
`$finetuned` (a good fine-tuned model). After a case, `$dir` must hold
exactly the files the case wrote: no output, no half-written temporary file.
To add a case, add a dict.
"""

import os
import shutil
import string
import zipfile

import keras
import pytest

from kfine import cli
from kfine.errors import KfineError

GOOD_TEMPLATES = '{"born_in": ["{subject} was born in {object}."], "works_for": ["{subject} works for {object}."], ' \
                 '"plays": ["{subject} plays the {object}."]}'
TRIPLES_HEADER = "subject\trelation\tobject\n"
FACT = "Alda Varenko\tborn_in\tDunmoor\n"
BENCH = ["bench", "--model", "$model", "--out", "$out"]
GOOD_KG = ["--triples", "$triples", "--templates", "$templates"]


def _bench_with_triples(name):
    return [*BENCH, "--triples", f"$dir/{name}", "--templates", "$templates"]


def _bench_with_templates(name):
    return [*BENCH, "--triples", "$triples", "--templates", f"$dir/{name}"]


def _bench_with_aliases(name):
    return [*BENCH, *GOOD_KG, "--aliases", f"$dir/{name}"]


CASES = [
    # === Triples files ===
    {"case": "triples_empty", "files": {"t.tsv": ""}, "argv": _bench_with_triples("t.tsv"),
     "error": "$dir/t.tsv: holds no triples"},
    {"case": "triples_header_only", "files": {"t.tsv": TRIPLES_HEADER}, "argv": _bench_with_triples("t.tsv"),
     "error": "holds no triples"},
    {"case": "triples_wrong_header", "files": {"t.tsv": "head\trel\ttail\n" + FACT},
     "argv": _bench_with_triples("t.tsv"), "error": "$dir/t.tsv:1: expected the header"},
    {"case": "triples_missing_field", "files": {"t.tsv": TRIPLES_HEADER + "Alda Varenko\tborn_in\n"},
     "argv": _bench_with_triples("t.tsv"), "error": "$dir/t.tsv:2: missing column 'object'"},
    {"case": "triples_extra_field", "files": {"t.tsv": TRIPLES_HEADER + "Alda Varenko\tborn_in\tDunmoor\tx\n"},
     "argv": _bench_with_triples("t.tsv"), "error": "$dir/t.tsv:2: 1 extra field(s)"},
    {"case": "triples_empty_field", "files": {"t.tsv": TRIPLES_HEADER + "Alda Varenko\t\tDunmoor\n"},
     "argv": _bench_with_triples("t.tsv"), "error": "$dir/t.tsv:2: relation is empty"},
    {"case": "triples_bad_encoding",
     "files": {"t.tsv": TRIPLES_HEADER.encode() + b"Alda Var\xe9nko\tborn_in\tDunmoor\n"},
     "argv": _bench_with_triples("t.tsv"), "error": "$dir/t.tsv:2: not valid UTF-8"},
    {"case": "triples_huge_line", "files": {"t.tsv": TRIPLES_HEADER + "A" * 200_000 + "\tborn_in\tDunmoor\n"},
     "argv": _bench_with_triples("t.tsv"), "error": "$dir/t.tsv:2: line is longer than 100,000 characters"},
    {"case": "triples_unsupported_extension", "files": {"t.txt": TRIPLES_HEADER + FACT},
     "argv": _bench_with_triples("t.txt"), "error": "unsupported extension '.txt'"},
    {"case": "triples_missing_file", "files": {}, "argv": _bench_with_triples("nowhere.tsv"),
     "error": "--triples: no such file: $dir/nowhere.tsv"},
    {"case": "triples_csv_bad_quoting",
     "files": {"t.csv": 'subject,relation,object\n"Alda" Varenko",born_in,Dunmoor\n'},
     "argv": _bench_with_triples("t.csv"), "error": "$dir/t.csv:2: malformed CSV"},
    {"case": "triples_jsonl_invalid_json", "files": {"t.jsonl": '{"subject": "Alda Varenko", "relation": \n'},
     "argv": _bench_with_triples("t.jsonl"), "error": "$dir/t.jsonl:1: invalid JSON"},
    {"case": "triples_jsonl_missing_key", "files": {"t.jsonl": '{"subject": "Alda Varenko", "relation": "born_in"}\n'},
     "argv": _bench_with_triples("t.jsonl"), "error": "missing key 'object'"},
    {"case": "triples_jsonl_number", "files": {"t.jsonl": '{"subject": "A", "relation": "born_in", "object": 3}\n'},
     "argv": _bench_with_triples("t.jsonl"), "error": "'object' must be a string, found a JSON number"},
    # === Aliases files ===
    {"case": "alias_shared_by_two_entities",
     "files": {"a.tsv": "entity\talias\nMirefall\tThe Town\nDunmoor\tThe Town\n"}, "argv": _bench_with_aliases("a.tsv"),
     "error": "$dir/a.tsv:3: alias 'The Town' of 'Dunmoor' is already an alias of"},
    {"case": "alias_of_unknown_entity", "files": {"a.tsv": "entity\talias\nAtlantis\tSunken City\n"},
     "argv": _bench_with_aliases("a.tsv"), "error": "which is not an entity of the graph"},
    {"case": "alias_is_another_entity", "files": {"a.tsv": "entity\talias\nMirefall\tDunmoor\n"},
     "argv": _bench_with_aliases("a.tsv"), "error": "is already the name of another entity"},
    {"case": "aliases_wrong_header", "files": {"a.tsv": "name\tother\nMirefall\tMire\n"},
     "argv": _bench_with_aliases("a.tsv"), "error": "$dir/a.tsv:1: expected the header"},
    # === Templates ===
    {"case": "templates_invalid_json", "files": {"t.json": '{"born_in": ["{subject} was born in {object}."],'},
     "argv": _bench_with_templates("t.json"), "error": "$dir/t.json:1: invalid JSON"},
    {"case": "templates_unknown_relation",
     "files": {"t.json": GOOD_TEMPLATES[:-1] + ', "married_to": ["{subject} married {object}."]}'},
     "argv": _bench_with_templates("t.json"),
     "error": "templates for relations the knowledge graph lacks: 'married_to'"},
    {"case": "templates_relation_missing", "files": {"t.json": '{"born_in": ["{subject} was born in {object}."]}'},
     "argv": _bench_with_templates("t.json"), "error": "no templates for the knowledge graph's relations"},
    {"case": "templates_missing_object", "files": {"t.json": GOOD_TEMPLATES.replace("{object}.\"]}", "nothing.\"]}")},
     "argv": _bench_with_templates("t.json"), "error": "must contain {object} exactly once"},
    {"case": "templates_object_before_subject",
     "files": {"t.json": GOOD_TEMPLATES.replace("{subject} plays the {object}.", "{object} is played by {subject}.")},
     "argv": _bench_with_templates("t.json"), "error": "must put {subject} before {object}"},
    {"case": "templates_not_an_object", "files": {"t.json": '["{subject} was born in {object}."]'},
     "argv": _bench_with_templates("t.json"), "error": "expected a JSON object mapping relations"},
    {"case": "templates_repeated_relation",
     "files": {"t.json": GOOD_TEMPLATES[:-1] + ', "plays": ["{subject} has a {object}."]}'},
     "argv": _bench_with_templates("t.json"), "error": "relation 'plays' appears more than once"},
    {"case": "templates_empty_list",
     "files": {"t.json": GOOD_TEMPLATES.replace('["{subject} plays the {object}."]', "[]")},
     "argv": _bench_with_templates("t.json"), "error": "relation 'plays': expected a non-empty list"},
    {"case": "templates_bad_encoding", "files": {"t.json": b'{"born_in": ["{subject} \xff {object}."]}'},
     "argv": _bench_with_templates("t.json"), "error": "$dir/t.json:1: is not valid UTF-8"},
    {"case": "templates_without_triples", "files": {}, "argv": ["bench", "--templates", "$templates", "--out", "$out"],
     "error": "--templates/--aliases given without --triples"},
    # === Model paths ===
    {"case": "model_missing", "files": {}, "argv": ["bench", *GOOD_KG, "--model", "$dir/nowhere", "--out", "$out"],
     "error": "$dir/nowhere: no such model file"},
    {"case": "model_directory_without_model", "files": {"empty/notes.txt": "no model here"},
     "argv": ["finetune", *GOOD_KG, "--model", "$dir/empty", "--out", "$out"],
     "error": "$dir/empty/model.keras: no such model file"},
    {"case": "model_text_file", "files": {"model.keras": "not a model\n"},
     "argv": ["generate", "--model", "$dir/model.keras", "Alda Varenko was born in"], "error": "not a .keras archive"},
    {"case": "model_truncated", "files": {"model.keras": "truncated_model"},
     "argv": ["generate", "--model", "$dir/model.keras", "Alda Varenko was born in"], "error": "$dir/model.keras: "},
    {"case": "model_not_a_language_model", "files": {"dense.keras": "dense_model"},
     "argv": ["generate", "--model", "$dir/dense.keras", "Alda Varenko was born in"],
     "error": "not a kfine language model"},
    {"case": "model_with_lambda_layer", "files": {"lambda.keras": "lambda_model"},
     "argv": ["generate", "--model", "$dir/lambda.keras", "Alda Varenko was born in"], "error": "Lambda"},
    {"case": "model_with_unregistered_class", "files": {"custom.keras": "unregistered_class_model"},
     "argv": ["generate", "--model", "$dir/custom.keras", "Alda Varenko was born in"],
     "error": "cannot load the model"},
    # === Fine-tuned models and their KG ===
    {"case": "finetuned_with_another_kg", "files": {}, "call": "load_fine_tuned_with_another_kg",
     "error": "the model was fine-tuned with KG"},
    {"case": "finetuned_kg_edited_after_saving", "files": {"copy": "finetuned_with_edited_kg"},
     "argv": ["generate", "--model", "$dir/copy", "Alda Varenko was born in"],
     "error": "the fingerprint does not match"},
    # === Prompts ===
    {"case": "prompt_empty", "files": {}, "argv": ["generate", "--model", "$model", ""], "error": "prompt: empty text"},
    {"case": "prompt_blank", "files": {}, "argv": ["generate", "--model", "$model", "Alda Varenko was born in", "   "],
     "error": "prompt: empty text"},
    {"case": "prompt_too_long", "files": {}, "argv": ["generate", "--model", "$model", "Alda Varenko " * 40],
     "error": "this model reads at most 31"},
    {"case": "prompt_too_long_for_a_finetuned_model", "files": {},
     "argv": ["generate", "--model", "$finetuned", "Alda Varenko " * 40], "error": "this model reads at most 31"},
    {"case": "prompt_without_entity", "files": {},
     "argv": ["generate", "--model", "$finetuned", "The weather today is"], "error": "names no entity of the model's"},
    {"case": "check_a_finetuned_model_without_checker", "files": {},
     "argv": ["check", "--model", "$finetuned", "Alda Varenko was born in Mirefall."],
     "error": "a fine-tuned model without a fact checker"},
    {"case": "check_a_language_model", "files": {}, "argv": ["check", "--model", "$model", "Alda Varenko plays."],
     "error": "not a kfine fact checker"},
    # === Flags ===
    {"case": "seeds_zero", "files": {}, "argv": [*BENCH, *GOOD_KG, "--seeds", "0"], "error": "--seeds"},
    {"case": "methods_empty", "files": {}, "argv": [*BENCH, *GOOD_KG, "--methods", " , "],
     "error": "--methods: give at least one method name"},
    {"case": "method_unknown", "files": {}, "argv": ["finetune", *GOOD_KG, "--method", "magic", "--out", "$out"],
     "error": "unknown method 'magic'"},
    {"case": "strategy_unknown", "files": {}, "argv": [*BENCH, *GOOD_KG, "--strategy", "parallel"],
     "error": "argument --strategy: invalid choice: 'parallel'"},
    {"case": "strategy_tpu_without_a_tpu", "files": {}, "argv": [*BENCH, *GOOD_KG, "--strategy", "tpu"],
     "error": "--strategy tpu: no TPU found"},
    {"case": "tpu_address_without_tpu_strategy", "files": {}, "argv": [*BENCH, *GOOD_KG, "--tpu", "grpc://10.0.0.2:8470"],
     "error": "--tpu is only used with --strategy tpu"},
    {"case": "checkpoint_every_zero", "files": {},
     "argv": ["finetune", *GOOD_KG, "--checkpoint-every", "0", "--out", "$out"], "error": "--checkpoint-every"},
    {"case": "top_p_above_one", "files": {}, "argv": ["generate", "--model", "$model", "--top-p", "1.5", "Alda"],
     "error": "expected a probability in (0, 1], got '1.5'"},
    {"case": "max_new_tokens_negative", "files": {}, "argv": ["generate", "--max-new-tokens", "-3", "Alda"],
     "error": "--max-new-tokens"},
    {"case": "out_is_a_file", "files": {"taken": "a file"}, "argv": [*BENCH[:-1], "$dir/taken", *GOOD_KG],
     "error": "--out: $dir/taken is a file"},
    {"case": "unknown_subcommand", "files": {}, "argv": ["train"], "error": "invalid choice: 'train'"},
]


# === Builders of binary inputs ===


def _keras_file(model, path):
    model.save(path)


def _truncated_model(path, paths):
    _keras_file(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), path)
    with open(path, "rb") as stream:
        content = stream.read()
    with open(path, "wb") as stream:
        stream.write(content[: len(content) // 2])


def _unregistered_class_model(path, paths):
    """A .keras file whose config names a class no one registered (here, one that would run a shell)."""
    _keras_file(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), path + ".tmp.keras")
    with zipfile.ZipFile(path + ".tmp.keras") as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "config.json":
                content = content.replace(b'"module": "keras.layers", "class_name": "Dense"',
                                          b'"module": "os", "class_name": "system"')
                assert b'"class_name": "system"' in content
            target.writestr(item, content)
    os.remove(path + ".tmp.keras")


def _finetuned_with_edited_kg(path, paths):
    shutil.copytree(paths["finetuned"], path)
    with open(os.path.join(path, "knowledge_graph", "triples.tsv"), "a", encoding="utf-8") as stream:
        stream.write("Someone New\tplays\tharp\n")


BUILDERS = {
    "truncated_model": _truncated_model,
    "dense_model": lambda path, paths: _keras_file(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), path),
    "lambda_model": lambda path, paths: _keras_file(
        keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2)]), path),
    "unregistered_class_model": _unregistered_class_model,
    "finetuned_with_edited_kg": _finetuned_with_edited_kg,
}


def _load_fine_tuned_with_another_kg(paths):
    from kfine.knowledge.graph import KnowledgeGraph
    from kfine.training.finetune import load_fine_tuned

    graph = KnowledgeGraph.load(os.path.join(paths["finetuned"], "knowledge_graph"))
    load_fine_tuned(paths["finetuned"], KnowledgeGraph([*graph.triples, ("Someone New", "plays", "harp")]))


API_CALLS = {"load_fine_tuned_with_another_kg": _load_fine_tuned_with_another_kg}


@pytest.fixture(scope="module")
def finetuned_dir(people_task, pretrained_dir, tmp_path_factory):
    """A `kfine finetune` output, made without training: the pretrained LM saved with the KG and fingerprint."""
    from kfine.models.loading import load_model, save_model
    from kfine.training.finetune import FINE_TUNED_KIND, KNOWLEDGE_GRAPH_DIR

    directory = str(tmp_path_factory.mktemp("finetuned") / "people-baseline")
    graph = people_task.model_graph
    metadata = {"kind": FINE_TUNED_KIND, "method": "baseline", "kg_fingerprint": graph.fingerprint(), "results": {}}
    save_model(load_model(pretrained_dir), directory, metadata=metadata,
               write_extra=lambda staging: graph.save(os.path.join(staging, KNOWLEDGE_GRAPH_DIR)))
    return directory


def _substitute(text, paths):
    return string.Template(text).substitute(paths)


@pytest.mark.parametrize("case", CASES, ids=[case["case"] for case in CASES])
def test_bad_input(case, people_kg_files, pretrained_dir, finetuned_dir, tmp_path, capsys):
    paths = {**people_kg_files, "model": pretrained_dir, "finetuned": finetuned_dir, "dir": str(tmp_path),
             "out": str(tmp_path / "out")}
    for name, content in case["files"].items():
        path = os.path.join(tmp_path, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if content in BUILDERS:
            BUILDERS[content](path, paths)
        else:
            with open(path, "wb") as stream:
                stream.write(content if isinstance(content, bytes) else content.encode("utf-8"))
    written = sorted(os.listdir(tmp_path))
    capsys.readouterr()
    expected = _substitute(case["error"], paths)
    if "call" in case:
        with pytest.raises(KfineError) as raised:
            API_CALLS[case["call"]](paths)
        message = str(raised.value)
        assert "\n" not in message and expected in message, message
    else:
        try:
            status = cli.main([_substitute(argument, paths) for argument in case["argv"]])
        except SystemExit as exit:  # argparse's errors
            status = exit.code
        captured = capsys.readouterr()
        assert status == 2, captured.err
        assert captured.out == ""
        lines = [line for line in captured.err.splitlines() if line.strip()]
        assert len(lines) == 1, captured.err
        assert lines[0].startswith("kfine") and ": error: " in lines[0], lines[0]
        assert expected in lines[0], lines[0]
    assert sorted(os.listdir(tmp_path)) == written  # no output, no temporary file left behind


def test_the_table_is_large_and_its_names_unique():
    names = [case["case"] for case in CASES]
    assert len(names) == len(set(names)) >= 30
    for case in CASES:
        assert ("argv" in case) != ("call" in case), case["case"]
        assert set(case) <= {"case", "files", "argv", "call", "error"}, case["case"]
