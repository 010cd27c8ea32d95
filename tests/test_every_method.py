"""Every registered method, end to end as a user runs it: `kfine finetune --quick`, `kfine generate`, `kfine bench`.

The methods are whatever the registry holds when the tests are collected, so
a method is run through the CLI the day it is registered (issue 22: a method
registered with another signature failed only when a user ran it). The
`tiny_methods` fixture cuts every quick configuration to one epoch: these
tests check that each method trains, saves, reloads and generates the same,
not how well. The model is a tiny keras-hub GPT-2 preset, as the shipped
default is one.
"""

import functools
import json
import os

import pytest

from cli_run import in_process, kfine_lines
from kfine.training import finetune, methods
from kfine.training.methods import available_methods, register_method

METHODS = available_methods()
# The splits the people KG has prompts for (it implies none of its unknown facts).
PEOPLE_SPLITS = ("seen", "heldout", "unknown", "paraphrase")
PROMPT = "Alda Varenko was born in"  # a subject of the people KG
# `kfine finetune` flags beyond the method's own: the neural fact checker is trained for factcheck (and in
# tests/factcheck); the preference variant checks against the KG, one checker training less.
FINETUNE_FLAGS = {"factcheck-dpo": ["--checker", "kg"]}


def kg_flags(files):
    return ["--triples", files["triples"], "--templates", files["templates"], "--aliases", files["aliases"]]


@pytest.fixture(scope="module")
def fine_tuned(people_kg_files, tiny_gpt2_preset, tiny_methods, tmp_path_factory):
    """`fine_tuned(method, capsys)`: `kfine finetune --method METHOD --quick` run once per module.

    Returns `{"out", "returncode", "stdout", "stderr", "call", "generator"}`:
    `call` holds the arguments the method was called with and `generator`
    what it returned, so the bench test can hand the same fine-tuned
    generator to `kfine bench` instead of training every method twice.
    """
    root, runs = tmp_path_factory.mktemp("finetune"), {}

    def run(method, capsys):
        if method not in runs:
            recorded = {}

            def recording_get_method(name):
                function = methods.get_method(name)

                @functools.wraps(function)
                def recording(task, pretrained, seed, log_dir, quick=False, verbose=0, **options):
                    recorded["call"] = {"task": task, "pretrained": pretrained, "seed": seed, "quick": quick,
                                        "options": options}
                    recorded["generator"] = function(task, pretrained, seed, log_dir, quick=quick, verbose=verbose,
                                                     **options)
                    return recorded["generator"]
                return recording

            out = str(root / method)
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(finetune, "get_method", recording_get_method)
                returncode, stdout, stderr = in_process(
                    ["finetune", "--method", method, "--quick", *FINETUNE_FLAGS.get(method, []),
                     *kg_flags(people_kg_files), "--model", tiny_gpt2_preset, "--logdir", str(root / f"{method}-logs"),
                     "--out", out], capsys)
            runs[method] = {"out": out, "returncode": returncode, "stdout": stdout, "stderr": stderr, **recorded}
        return runs[method]

    return run


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_finetune_saves_a_model_that_generates(method, fine_tuned, capsys):
    run = fine_tuned(method, capsys)
    out = run["out"]
    assert run["returncode"] == 0, run["stderr"]
    assert f"\nsaved {out} ({method}, seed 0)" in run["stdout"], run["stdout"]
    with open(os.path.join(out, "training.json"), encoding="utf-8") as stream:
        metadata = json.load(stream)
    assert (metadata["method"], metadata["quick"]) == (method, True)
    assert sorted(metadata["results"]) == sorted(PEOPLE_SPLITS)

    # `kfine generate` reloads it (model, KG, fingerprint check) and completes the prompt.
    returncode, stdout, stderr = in_process(["generate", "--model", out, "--max-new-tokens", "4", PROMPT], capsys)
    assert returncode == 0, stderr
    assert len(stdout.splitlines()) == 1 and stdout.startswith(PROMPT), stdout
    # The reloaded model, with the preset's own vocabulary, generates what the fine-tuned one did.
    reloaded = finetune.load_fine_tuned(out)
    assert reloaded.model.tokenizer.vocabulary == run["generator"].model.tokenizer.vocabulary
    prompts = [PROMPT, "The employer of Borin Quillby is"]
    before = run["generator"].generate(prompts, max_new_tokens=6)
    assert reloaded.generate(prompts, max_new_tokens=6) == before and any(before)


@pytest.mark.slow
def test_bench_reports_every_method_on_every_split(people_kg_files, tiny_gpt2_preset, fine_tuned, tmp_path,
                                                   monkeypatch, capsys):
    """`kfine bench` over every method, each method's training replayed from its `kfine finetune` run.

    The bench looks each method up and checks it as always; the method, called
    with the task, model, seed and options it was fine-tuned with above, hands
    back that fine-tuned generator, which the bench evaluates and reports.
    """
    import kfine.bench

    runs = {method: fine_tuned(method, capsys) for method in METHODS}
    assert all(run["returncode"] == 0 for run in runs.values()), {m: r["stderr"] for m, r in runs.items()}
    out = str(tmp_path / "bench")
    replayed = []

    def replaying_get_method(name):
        function = methods.get_method(name)  # the registry's lookup and signature check

        @functools.wraps(function)
        def replay(task, pretrained, seed, log_dir, quick=False, verbose=0, **options):
            call = runs[name]["call"]
            # `kfine bench` has no --checker: the method runs with its default checker there.
            finetune_options = {key: value for key, value in call["options"].items() if key != "checker"}
            assert (pretrained, seed, quick, options) == (call["pretrained"], call["seed"], call["quick"],
                                                          finetune_options)
            assert task.finetune_sentences == call["task"].finetune_sentences
            assert task.model_graph.fingerprint() == call["task"].model_graph.fingerprint()
            assert log_dir.startswith(out)
            replayed.append(name)
            return runs[name]["generator"]
        return replay

    monkeypatch.setattr(kfine.bench, "get_method", replaying_get_method)
    returncode, stdout, stderr = in_process(
        ["bench", "--quick", "--methods", ",".join(METHODS), "--seeds", "1", *kg_flags(people_kg_files),
         "--model", tiny_gpt2_preset, "--out", out], capsys)
    assert returncode == 0, stderr
    assert replayed == METHODS
    with open(os.path.join(out, "results.json"), encoding="utf-8") as stream:
        results = json.load(stream)
    assert results["config"]["methods"] == METHODS
    rows = [row for row in results["results"] if row["method"] in METHODS]  # besides the reference rows
    reported = {(row["method"], row["split"]) for row in rows}
    assert reported == {(method, split) for method in METHODS for split in PEOPLE_SPLITS}
    assert all(row["n_seeds"] == 1 for row in rows)
    assert f"wrote {out}/results.json" in stdout


def wrong_signature(task, pretrained):
    return None


@pytest.mark.parametrize("command", ["finetune", "bench"])
def test_a_method_registered_with_the_wrong_signature_is_a_one_line_error(command, people_kg_files, pretrained_dir,
                                                                          tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(methods, "_USER_METHODS", dict(methods._USER_METHODS))  # the registration ends with the test
    register_method("wrong_signature")(wrong_signature)
    choice = ["--method", "wrong_signature"] if command == "finetune" else ["--methods", "baseline,wrong_signature"]
    out = str(tmp_path / "out")
    returncode, stdout, stderr = in_process(
        [command, *choice, *kg_flags(people_kg_files), "--model", pretrained_dir, "--out", out], capsys)
    assert returncode == 2, stderr
    lines = kfine_lines(stderr)
    assert len(lines) == 1, stderr
    assert lines[0].startswith("kfine: error: method 'wrong_signature': wrong_signature is registered but cannot "
                               "be called as a method"), lines[0]
    assert not os.path.exists(out)
