"""Issue 17's acceptance on a KG of another domain, with a tiny GPT-2 preset pretrained on it.

Researchers of fictional labs, with names in characters the geonames KG never
has ("Curaçao", "α-helix", "Zürich", "Łódź"): the preset's byte-level BPE
spells every one of them with no unknown token, and the `knowledge` method
answers held-out facts the baseline cannot.
"""

import json
import os

import pytest

from kfine.evaluation.evaluate import judge_prompts
from kfine.evaluation.metrics import rates
from kfine.knowledge.task import QUICK, FactTask
from kfine.models.loading import load_model
from kfine.training.baseline import fine_tune_baseline
from kfine.training.knowledge import fine_tune_knowledge
from kfine.training.pretrain_preset import pretrain_preset

FIRST_NAMES = ["Åsa", "Ñuño", "Øyvind", "Zoë", "Ľudo", "Çelik", "Ève", "Þóra"]
LAST_NAMES = ["Gróf", "Nakašima", "Dvořák", "Ibáñez", "Müller"]
CITIES = ["Zürich", "Curaçao", "Łódź", "Reykjavík", "São Tomé"]
TOPICS = ["α-helix", "β-sheet", "γ-ray bursts", "Δ-baryons"]
TEMPLATES = {
    "lives_in": ["{subject} lives in {object}.", "The home town of {subject} is {object}.",
                 "{subject} resides in {object} these days."],
    "studies": ["{subject} studies the {object}.", "The research topic of {subject} is the {object}.",
                "{subject} writes papers on the {object}."],
}
# A tiny GPT-2 and a short pretraining (seconds of fitting; the model card's evaluation is most of it).
DIMS = {"num_layers": 1, "hidden_dim": 32, "num_heads": 2, "intermediate_dim": 64, "sequence_length": 32}
PRETRAIN_EPOCHS = 8
# The acceptance bar of issue 17; measured on this config (split seed 0): baseline 0.0, knowledge 1.0.
REQUIRED_GAP = 0.30


def write_research_kg(directory, count=40):
    triples = [(f"{FIRST_NAMES[i % len(FIRST_NAMES)]} {LAST_NAMES[i // len(FIRST_NAMES)]}", relation, objects[k])
               for i in range(count)
               for relation, objects, k in (("lives_in", CITIES, i % len(CITIES)),
                                            ("studies", TOPICS, (i * 3) % len(TOPICS)))]
    paths = {"triples": os.path.join(directory, "triples.tsv"), "templates": os.path.join(directory, "templates.json")}
    with open(paths["triples"], "w", encoding="utf-8") as stream:
        stream.write("subject\trelation\tobject\n")
        stream.writelines("\t".join(triple) + "\n" for triple in triples)
    with open(paths["templates"], "w", encoding="utf-8") as stream:
        json.dump(TEMPLATES, stream, ensure_ascii=False)
    return paths


@pytest.fixture(scope="module")
def research_task(tmp_path_factory):
    return FactTask.from_files(**write_research_kg(str(tmp_path_factory.mktemp("research_kg"))), size=QUICK)


@pytest.fixture(scope="module")
def research_preset(research_task, tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("research_gpt2"))
    pretrain_preset(research_task, folder, architecture="gpt2", epochs=PRETRAIN_EPOCHS, batch_size=32,
                    vocabulary_size=400, dims=DIMS, verbose=0, command="pytest")
    return folder


def heldout_accuracy(generator, task):
    return rates(judge_prompts(generator, task.knowledge_graph, task.evaluation_prompts("heldout")))["accuracy"]


def test_every_name_spells_with_no_unknown_token(research_task, research_preset):
    tokenizer = load_model(research_preset).tokenizer
    graph = research_task.knowledge_graph
    names = [name for entity in graph.entities for name in graph.names(entity)]
    assert {"Curaçao", "α-helix", "Zürich", "Łódź"} <= set(names)
    rows = tokenizer.encode_batch(names) + tokenizer.encode_in_context(names)
    assert tokenizer.unk_id is None  # byte-level BPE has no unknown token at all
    assert all(0 < token < tokenizer.vocabulary_size for row in rows for token in row)
    assert tokenizer.decode_batch(tokenizer.encode_batch(names)) == names


@pytest.mark.slow
def test_knowledge_beats_the_baseline_on_held_out_facts(research_task, research_preset, tmp_path):
    baseline = heldout_accuracy(fine_tune_baseline(research_task, research_preset, seed=0, log_dir=str(tmp_path),
                                                   quick=True), research_task)
    knowledge = heldout_accuracy(fine_tune_knowledge(research_task, research_preset, seed=0, log_dir=str(tmp_path),
                                                     quick=True), research_task)
    assert knowledge - baseline >= REQUIRED_GAP, (baseline, knowledge)
