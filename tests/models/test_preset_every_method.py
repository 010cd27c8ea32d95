"""Every registered method fine-tunes a tiny keras-hub preset (GPT-2, Llama, Gemma) and saves what it generates.

Issue 17, item 7: load, generate, fine-tune for one epoch on the people KG
(`tiny_methods`), save, reload, same greedy output; and KG-constrained
decoding on a preset. Every method runs on a tiny GPT-2 preset through the
CLI, with the same checks, in tests/test_every_method.py; here Llama and
Gemma (SentencePiece) run the `knowledge` method, which fits the backbone and
puts the injection layer between backbone and head (the plain model's save
and reload on every architecture is test_preset_loading's).
"""

import pytest

from kfine.evaluation.evaluate import judge_prompts
from kfine.evaluation.metrics import rates
from kfine.knowledge.task import QUICK, FactTask
from kfine.models.constrained_decoding import constrained
from kfine.models.generation import Generator
from kfine.models.loading import load_model
from kfine.training import finetune
from presets import ARCHITECTURES, write_tiny_preset

PROMPTS = ["Alda Varenko was born in", "The employer of Borin Quillby is"]
RUNS = [(architecture, "knowledge") for architecture in ARCHITECTURES[1:]]


@pytest.fixture(scope="module")
def presets(people_task, tmp_path_factory):
    return {architecture: write_tiny_preset(architecture, people_task, str(tmp_path_factory.mktemp(architecture)))
            for architecture in ARCHITECTURES}


@pytest.fixture(scope="module")
def vocabularies(presets):
    """`{architecture: the preset's vocabulary}`, loaded once."""
    return {architecture: load_model(folder).tokenizer.vocabulary for architecture, folder in presets.items()}


@pytest.fixture(scope="module")
def quick_task(people_kg_files):
    return FactTask.from_files(**people_kg_files, size=QUICK)


@pytest.mark.slow
@pytest.mark.parametrize("architecture, method", RUNS)
def test_a_method_fine_tunes_a_preset_and_the_reloaded_model_generates_the_same(
        architecture, method, presets, vocabularies, quick_task, tiny_methods, tmp_path, monkeypatch):
    # What the fine-tuned generator itself completes, before `fine_tune` saves it.
    greedy = {}
    evaluate_splits = finetune.evaluate_splits

    def generate_then_evaluate(generator, task, splits):
        greedy["before"] = generator.generate(PROMPTS, max_new_tokens=6)
        return evaluate_splits(generator, task, splits)

    monkeypatch.setattr(finetune, "evaluate_splits", generate_then_evaluate)
    out = str(tmp_path / method)
    metadata = finetune.fine_tune(quick_task, presets[architecture], method, out, quick=True, verbose=0)
    assert metadata["method"] == method and set(metadata["results"]) == set(quick_task.evaluated_splits)
    reloaded = finetune.load_fine_tuned(out)
    assert reloaded.model.tokenizer.vocabulary == vocabularies[architecture]
    assert reloaded.generate(PROMPTS, max_new_tokens=6) == greedy["before"]
    assert any(text for text in greedy["before"])  # it generated something to compare


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_constrained_decoding_on_a_preset_answers_only_kg_entities(architecture, presets, quick_task):
    model = load_model(presets[architecture])
    generator = constrained(Generator(model, model.tokenizer), quick_task.model_graph, quick_task.templates)
    for split in ("heldout", "unknown"):
        prompts = quick_task.evaluation_prompts(split)
        judged = judge_prompts(generator, quick_task.knowledge_graph, prompts)
        assert rates(judged)["invalid_entity_rate"] == 0.0, split
        for (prompt, _), judgement in zip(prompts, judged):
            allowed, abstain = generator.constraint.allowed_entities(prompt.text)
            if judgement.verdict == "abstained":
                assert abstain, prompt.text
            else:
                assert allowed is None or judgement.entity in allowed, (prompt.text, judgement.completion)
    # The random preset alone names no KG entity: the constraint did the work.
    plain = judge_prompts(Generator(model, model.tokenizer), quick_task.knowledge_graph,
                          quick_task.evaluation_prompts("heldout"))
    assert rates(plain)["invalid_entity_rate"] > 0.5
