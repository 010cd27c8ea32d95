"""The `kfine` command line: as a user runs it, in a subprocess, and in-process through `kfine.cli.main`.

Each subprocess pays TensorFlow's start-up, so the cases that are about the
process (the console script, exit statuses and stderr of a real process,
TensorFlow's own logging) run in one; the others call `main` in-process.
"""

import os
import re
import subprocess
import sys

import keras
import pytest

from cli_run import in_process, kfine_lines
from kfine.datasets.geonames import build_geonames
from kfine.knowledge import KnowledgeGraph, Templates
from kfine.knowledge.names import DEFAULT_ABSTENTION
from kfine.models.generation import Generator
from kfine.models.loading import load_model

COMMAND = [sys.executable, "-m", "kfine.cli"]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, people_kg_files):
    """Files a user might wrongly pass: a malformed triples file, a text file, a Keras model that is no kfine LM."""
    directory = tmp_path_factory.mktemp("bad_inputs")
    paths = {"dir": str(directory)}
    paths["malformed"] = str(directory / "malformed.tsv")
    with open(paths["malformed"], "w", encoding="utf-8") as stream:
        stream.write("subject\trelation\tobject\nAlda Varenko\tborn_in\tDunmoor\nBorin Quillby\tborn_in\n")
    paths["text"] = str(directory / "notes.txt")
    with open(paths["text"], "w", encoding="utf-8") as stream:
        stream.write("not a model\n")
    paths["dense"] = str(directory / "dense.keras")
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(paths["dense"])
    return paths


def error_cases(kg, bad, model):
    """`{case: (arguments, text the error line must quote)}`."""
    out = os.path.join(bad["dir"], "out")
    missing_model = os.path.join(bad["dir"], "no_such_model")
    kg_flags = ["--triples", kg["triples"], "--templates", kg["templates"]]
    return {
        "missing_triples_file": (
            ["bench", "--triples", os.path.join(bad["dir"], "missing.tsv"), "--templates", kg["templates"],
             "--model", model, "--out", out], os.path.join(bad["dir"], "missing.tsv")),
        "triples_without_templates": (["bench", "--triples", kg["triples"], "--model", model, "--out", out],
                                      "--templates"),
        "malformed_triples_file": (
            ["bench", "--triples", bad["malformed"], "--templates", kg["templates"], "--model", model, "--out", out],
            f"{bad['malformed']}:3:"),
        "seeds_zero": (["bench", *kg_flags, "--model", model, "--seeds", "0", "--out", out], "--seeds"),
        "runs_without_perf": (["bench", *kg_flags, "--model", model, "--runs", "3", "--out", out], "--runs"),
        "unknown_method": (["bench", *kg_flags, "--model", model, "--methods", "baseline,nope", "--out", out],
                           "--methods: unknown method 'nope'"),
        "model_missing_dir": (["generate", "--model", missing_model, "Alda Varenko was born in"], missing_model),
        "model_text_file": (["generate", "--model", bad["text"], "Alda Varenko was born in"], bad["text"]),
        "model_not_kfine": (["generate", "--model", bad["dense"], "Alda Varenko was born in"], bad["dense"]),
    }


GENERATE_PROMPTS = ["Alda Varenko was born in", "The employer of Borin Quillby is"]
# Bad input in a real process: a model that Keras loads (the likeliest to let
# TensorFlow or Keras print more lines than kfine's one). The KG file and
# argument errors take the same path through `main` and run in-process, since
# each process pays TensorFlow's start-up.
IN_A_SUBPROCESS = ("model_not_kfine",)


@pytest.fixture(scope="module")
def runs(people_kg_files, bad_inputs, pretrained_dir, tmp_path_factory):
    """Starts every subprocess of this module at once, since each pays TensorFlow's start-up.

    Returns `finish(name) -> (returncode, stdout, stderr)`; error cases are named as in `error_cases`.
    """
    commands = {case: [*COMMAND, *arguments]
                for case, (arguments, _) in error_cases(people_kg_files, bad_inputs, pretrained_dir).items()
                if case in IN_A_SUBPROCESS}
    # The console script installed beside this Python, as users type it.
    commands["help"] = [os.path.join(os.path.dirname(sys.executable), "kfine"), "--help"]
    outside_the_repository = str(tmp_path_factory.mktemp("cwd"))
    processes = {
        name: subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=outside_the_repository)
        for name, command in commands.items()
    }
    results = {}

    def finish(name):
        if name not in results:
            stdout, stderr = processes[name].communicate(timeout=600)
            results[name] = (processes[name].returncode, stdout, stderr)
        return results[name]

    yield finish
    for process in processes.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


CASES = [
    "missing_triples_file", "triples_without_templates", "malformed_triples_file", "seeds_zero", "runs_without_perf",
    "unknown_method", "model_missing_dir", "model_text_file", "model_not_kfine",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_exits_2_with_one_line(runs, people_kg_files, bad_inputs, pretrained_dir, case, capsys):
    arguments = error_cases(people_kg_files, bad_inputs, pretrained_dir)[case][0]
    returncode, stdout, stderr = runs(case) if case in IN_A_SUBPROCESS else in_process(arguments, capsys)
    quoted = error_cases(people_kg_files, bad_inputs, pretrained_dir)[case][1]
    assert "Traceback" not in stderr and "Traceback" not in stdout, stderr
    assert returncode == 2, stderr
    lines = kfine_lines(stderr)
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert re.match(r"kfine( \w+)?: error: ", lines[0]), lines[0]
    assert quoted in lines[0], lines[0]


def test_cases_are_all_run(people_kg_files, bad_inputs):
    assert sorted(CASES) == sorted(error_cases(people_kg_files, bad_inputs, "model"))
    assert set(IN_A_SUBPROCESS) < set(CASES)


def test_help_lists_the_subcommands(runs):
    returncode, stdout, stderr = runs("help")
    assert returncode == 0, stderr
    for command in ("data", "pretrain", "generate", "bench"):
        assert re.search(rf"^\s+{command}\s", stdout, re.MULTILINE), stdout


def test_data_geonames_round_trips(tmp_path, capsys):
    out = str(tmp_path / "geonames")
    returncode, stdout, stderr = in_process(["data", "geonames", "--out", out], capsys)
    assert returncode == 0, stderr
    assert sorted(os.listdir(out)) == ["aliases.tsv", "templates.json", "triples.tsv"]
    assert stdout.startswith("wrote ")
    graph, templates = build_geonames()
    written = KnowledgeGraph.from_files(os.path.join(out, "triples.tsv"), os.path.join(out, "aliases.tsv"))
    assert written.entities == graph.entities
    assert written.relations == graph.relations
    assert written.triples == graph.triples
    assert written.alias_pairs == graph.alias_pairs
    assert written.fingerprint() == graph.fingerprint()
    assert Templates.from_file(os.path.join(out, "templates.json")) == templates
    assert f"{graph.num_entities} entities" in stdout


def test_generate_prints_one_line_per_prompt(pretrained_dir, capsys):
    returncode, stdout, stderr = in_process(
        ["generate", "--model", pretrained_dir, "--max-new-tokens", "4", *GENERATE_PROMPTS], capsys)
    assert returncode == 0, stderr
    # Each line is the prompt and the greedy completion the Python API gives (which may be
    # empty: a tiny model can end a sentence at once).
    model = load_model(pretrained_dir)
    completions = Generator(model, model.tokenizer).generate(GENERATE_PROMPTS, 4)
    assert stdout.splitlines() == [f"{prompt} {completion}"
                                   for prompt, completion in zip(GENERATE_PROMPTS, completions)]
    assert any(completions)


def test_generate_abstains_below_min_confidence(pretrained_dir, capsys):
    sure = ["generate", "--model", pretrained_dir, "--max-new-tokens", "4", "--min-confidence"]
    returncode, stdout, stderr = in_process([*sure, "1e-30", *GENERATE_PROMPTS], capsys)
    assert returncode == 0, stderr
    model = load_model(pretrained_dir)
    completions = Generator(model, model.tokenizer).generate(GENERATE_PROMPTS, 4)
    assert stdout.splitlines() == [f"{prompt} {completion}"
                                   for prompt, completion in zip(GENERATE_PROMPTS, completions)]
    # No completion of a trained LM has probability 1: at P = 1 every answer is withheld.
    returncode, stdout, stderr = in_process([*sure, "1", *GENERATE_PROMPTS], capsys)
    assert returncode == 0, stderr
    assert stdout.splitlines() == [f"{prompt} {DEFAULT_ABSTENTION}" for prompt in GENERATE_PROMPTS]
    returncode, _, stderr = in_process([*sure, "1.5", *GENERATE_PROMPTS], capsys)
    assert returncode == 2 and "--min-confidence" in stderr
