"""Every `kfine` command the README documents is run once in the suite, on tiny inputs.

`test_every_documented_command_is_run` reads the commands from README.md's
code and names the test that runs each: a newly documented command fails it
until a test runs the command. The commands no other module runs are run here.
"""

import glob
import json
import os
import re

import pytest

from cli_run import in_process
from kfine.knowledge import KnowledgeGraph
from kfine.models.loading import load_metadata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPT = "Alda Varenko was born in"  # a subject of the people KG

# documented command -> the test that runs it
RUN_BY = {
    "data": "tests/test_cli.py::test_data_geonames_round_trips",
    "pretrain": "tests/test_documented_commands.py::test_pretrain_writes_a_model_that_generates",
    "finetune": "tests/test_every_method.py::test_finetune_saves_a_model_that_generates",
    "generate": "tests/test_every_method.py::test_finetune_saves_a_model_that_generates",
    "check": "tests/factcheck/test_check_cli.py::test_check_prints_the_verdict_and_probability_of_each_sentence",
    "bench": "tests/test_every_method.py::test_bench_reports_every_method_on_every_split",
    "bench --perf": "tests/perf/test_perf.py::test_perf_json_has_every_ratio",
    "kg export": "tests/test_documented_commands.py::test_kg_commands_export_import_embed_and_sample",
    "kg import": "tests/test_documented_commands.py::test_kg_commands_export_import_embed_and_sample",
    "kg embed": "tests/test_documented_commands.py::test_kg_commands_export_import_embed_and_sample",
    "kg sample": "tests/test_documented_commands.py::test_kg_commands_export_import_embed_and_sample",
}


def documented_commands(readme):
    """The `kfine` commands in `readme`'s code (fenced blocks and `inline code`): "bench", "kg embed", ..."""
    snippets, fenced = [], False
    for line in readme.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced:
            snippets.append(line)
        else:
            snippets += re.findall(r"`([^`]+)`", line)
    commands = set()
    for snippet in snippets:
        match = re.match(r"\s*(?:\S*/)?kfine ([a-z]+)(?: ([a-z|]+))?", snippet)
        if not match:
            continue
        command, words = match.groups()
        if command == "kg":
            commands |= {f"kg {word}" for word in (words or "").split("|") if word}
        else:
            commands.add("bench --perf" if command == "bench" and "--perf" in snippet else command)
    return commands


def kg_flags(files):
    return ["--triples", files["triples"], "--templates", files["templates"], "--aliases", files["aliases"]]


def test_every_documented_command_is_run():
    # The README links to docs/ for the full list, so both document commands.
    pages = [os.path.join(ROOT, "README.md"), *glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)]
    documented = set()
    for page in pages:
        with open(page, encoding="utf-8") as stream:
            documented |= documented_commands(stream.read())
    assert {"data", "bench", "kg embed"} <= documented  # the pages parse
    assert sorted(documented - set(RUN_BY)) == [], "documented commands no test runs"
    for command, test in RUN_BY.items():
        path, name = test.split("::")
        with open(os.path.join(ROOT, path), encoding="utf-8") as stream:
            assert f"def {name}(" in stream.read(), f"{command}: {test} is gone"


def test_pretrain_writes_a_model_that_generates(people_kg_files, tmp_path, capsys):
    out = str(tmp_path / "lm")
    returncode, stdout, stderr = in_process(
        ["pretrain", *kg_flags(people_kg_files), "--epochs", "1", "--logdir", str(tmp_path / "logs"), "--out", out],
        capsys)
    assert returncode == 0, stderr
    assert f"saved {out}: final loss" in stdout, stdout
    metadata = load_metadata(out)
    graph = KnowledgeGraph.from_files(people_kg_files["triples"], people_kg_files["aliases"])
    assert (metadata["kind"], metadata["kg_fingerprint"]) == ("kfine-causal-lm", graph.fingerprint())
    returncode, stdout, stderr = in_process(
        ["generate", "--model", out, "--sampler", "top_k", "--seed", "0", "--max-new-tokens", "3", PROMPT], capsys)
    assert returncode == 0, stderr
    assert len(stdout.splitlines()) == 1 and stdout.startswith(PROMPT), stdout


@pytest.mark.slow
def test_kg_commands_export_import_embed_and_sample(people_kg_files, pretrained_dir, tiny_methods, tmp_path, request,
                                                    capsys):
    graph = KnowledgeGraph.from_files(people_kg_files["triples"], people_kg_files["aliases"])
    graph_dir, kg_dir, embeddings = (str(tmp_path / name) for name in ("graph", "kg", "embeddings"))
    files = ["--triples", people_kg_files["triples"], "--aliases", people_kg_files["aliases"]]
    assert in_process(["kg", "export", *files, "--out", graph_dir], capsys)[0] == 0
    assert in_process(["kg", "import", graph_dir, "--out", kg_dir], capsys)[0] == 0
    assert KnowledgeGraph.load(kg_dir) == graph

    # The knowledge method's encoder is 64-dimensional; one epoch is enough to load them.
    assert in_process(["kg", "embed", *files, "--dim", "64", "--epochs", "1", "--out", embeddings], capsys)[0] == 0
    with open(os.path.join(embeddings, "metrics.json"), encoding="utf-8") as stream:
        assert set(json.load(stream)["models"]) == {"gnn", "transe", "distmult"}
    out = str(tmp_path / "knowledge")
    returncode, _, stderr = in_process(
        ["finetune", "--method", "knowledge", "--quick", *kg_flags(people_kg_files), "--model", pretrained_dir,
         "--init-embeddings", os.path.join(embeddings, "gnn"), "--out", out], capsys)
    assert returncode == 0, stderr
    assert load_metadata(out)["init_embeddings"] == os.path.join(embeddings, "gnn")

    # `kfine kg sample`: the shared sample, requested last since another worker may be drawing it meanwhile.
    people_sample = request.getfixturevalue("people_sample")
    sampled = KnowledgeGraph.load(os.path.join(people_sample, "knowledge_graph"))
    assert 0 < sampled.num_triples and set(sampled.triples) <= set(graph.triples)
    assert os.path.isfile(os.path.join(people_sample, "sample.json"))
