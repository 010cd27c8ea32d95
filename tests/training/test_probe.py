"""The probe slice and the `knowledge+factcheck` rounds: they read no held-out, unknown or paraphrase material."""

import numpy as np
import pytest

from kfine.factcheck.knowledge_graph_checker import KnowledgeGraphChecker
from kfine.knowledge.names import DEFAULT_ABSTENTION
from kfine.knowledge.splits import Splits
from kfine.knowledge.task import FactTask, TaskSize
from kfine.knowledge.templates import Templates
from kfine.training import adversarial, baseline, factcheck
from kfine.training.feedback.config import FeedbackConfig
from kfine.training.feedback.round_data import prompt_references
from kfine.training.knowledge_feedback import fine_tune_knowledge_factcheck
from kfine.training.probe import ProbeSlice


@pytest.fixture(scope="module")
def probed_task(people_task):
    """The people task training on 3 of its 8 finetune subjects, so the other 5 can be probed."""
    return FactTask(people_task.knowledge_graph, people_task.templates, size=TaskSize(finetune_subjects=3))


def _forbidden_subjects(task):
    return set(task.splits.subjects("heldout")) | set(task.splits.subjects("unknown"))


def test_probe_is_finetune_material_kept_out_of_training(probed_task):
    probe = ProbeSlice(probed_task)
    trained = {subject for subject, _, _ in probed_task.finetune_triples}
    assert probe.triples and all(probed_task.splits.group_of(s) == "finetune" for s, _, _ in probe.triples)
    assert not trained & set(probe.subjects)
    assert all(probed_task.splits.group_of(s) == "finetune" for s, _, _ in probe.graph.triples)
    paraphrases = {Templates.prompt(probed_task.templates.paraphrase_template(r), s)
                   for s, r, _ in probe.triples if probed_task.templates.paraphrase_template(r)}
    assert probe.prompts() and not paraphrases & set(probe.prompts())
    for relation in probe.templates.relations:
        assert probed_task.templates.paraphrase_template(relation) not in probe.templates.templates(relation)


@pytest.fixture
def evaluation_material_guard(probed_task, monkeypatch):
    """Every read of held-out, unknown or paraphrase material raises; yields the sentences the KG checker judged."""
    checked = []
    original_check = KnowledgeGraphChecker.check
    original_triples = Splits.triples

    def recording_check(self, sentences):
        checked.extend(sentences)
        return original_check(self, sentences)

    def refuse(*_, **__):
        raise AssertionError("the method read evaluation material")

    def guarded_triples(self, group):
        if group in ("heldout", "unknown"):
            refuse()
        return original_triples(self, group)

    monkeypatch.setattr(KnowledgeGraphChecker, "check", recording_check)
    monkeypatch.setattr(Splits, "triples", guarded_triples)
    monkeypatch.setattr(FactTask, "evaluation_prompts", refuse)
    monkeypatch.setattr(FactTask, "heldout_sentences", property(refuse))
    monkeypatch.setattr(Templates, "paraphrase_template", refuse)
    yield checked
    monkeypatch.undo()


def test_the_guard_catches_each_read_of_evaluation_material(probed_task, evaluation_material_guard):
    reads = [lambda: probed_task.evaluation_prompts("heldout"), lambda: probed_task.splits.triples("unknown"),
             lambda: probed_task.heldout_sentences, lambda: probed_task.templates.paraphrase_template("born_in")]
    for read in reads:
        with pytest.raises(AssertionError, match="evaluation material"):
            read()
    assert probed_task.splits.triples("finetune")  # training material stays readable


def test_adversarial_rollouts_read_no_heldout_unknown_or_paraphrase_material(
        probed_task, pretrained_dir, tmp_path, evaluation_material_guard, monkeypatch):
    # One short epoch each: what it reads, not what it learns.
    monkeypatch.setattr(baseline, "QUICK_EPOCHS", 1)
    monkeypatch.setattr(adversarial, "QUICK_EPOCHS", 1)
    rolled_out = []
    original_examples = adversarial.adversarial_examples

    def recording_examples(task, *args, rollout_triples=None, **kwargs):
        rolled_out.extend(rollout_triples)
        return original_examples(task, *args, rollout_triples=rollout_triples, **kwargs)

    monkeypatch.setattr(adversarial, "adversarial_examples", recording_examples)
    adversarial.fine_tune_adversarial(probed_task, pretrained_dir, seed=0, log_dir=str(tmp_path), quick=True)
    probe = ProbeSlice(probed_task)
    assert sorted(rolled_out) == sorted(probe.triples)
    assert not {subject for subject, _, _ in rolled_out} & _forbidden_subjects(probed_task)


@pytest.mark.parametrize("method", ["knowledge+factcheck", "factcheck"])
def test_rounds_read_no_heldout_unknown_or_paraphrase_material(method, probed_task, pretrained_dir, tmp_path,
                                                               evaluation_material_guard, monkeypatch):
    forbidden = _forbidden_subjects(probed_task)
    allowed_prompts = set(ProbeSlice(probed_task).prompts())
    if method == "factcheck":
        # One short round: what it reads, not what it learns.
        monkeypatch.setattr(factcheck, "QUICK_FEEDBACK", FeedbackConfig(rounds=1, samples_per_prompt=1,
                                                                        epochs_per_round=1))
        allowed_prompts |= set(prompt_references(probed_task))
        generator = factcheck.fine_tune_factcheck(probed_task, pretrained_dir, seed=0, log_dir=str(tmp_path),
                                                  quick=True, checker="kg")
    else:
        generator = fine_tune_knowledge_factcheck(probed_task, pretrained_dir, seed=0, log_dir=str(tmp_path),
                                                  quick=True)
        assert generator.model.abstains
    checked = list(evaluation_material_guard)
    assert checked
    assert all(any(sentence.startswith(prompt) for prompt in allowed_prompts) for sentence in checked)
    assert any(any(sentence.startswith(prompt) for prompt in ProbeSlice(probed_task).prompts()) for sentence in checked)
    assert not any(subject in sentence for sentence in checked for subject in forbidden)
    # The rounds logged their counts to TensorBoard.
    assert (tmp_path / "feedback").is_dir()


def test_learned_abstention_declines_subjects_the_kg_has_no_facts_for(probed_task, pretrained_dir, tmp_path):
    # 5 probe subjects, 4 of them removed from the model's KG: the rounds teach "no fact -> unknown" with no
    # decoding rule. Held-out subjects are as new but their facts are in the KG, so it must not decline them.
    generator = fine_tune_knowledge_factcheck(probed_task, pretrained_dir, seed=0, log_dir=str(tmp_path), quick=True)
    abstained = {}
    for split in ("unknown", "heldout", "seen"):
        texts = generator.generate([prompt.text for prompt, _ in probed_task.evaluation_prompts(split)])
        abstained[split] = np.mean([text.strip() == DEFAULT_ABSTENTION for text in texts])
    print(abstained)
    assert abstained["unknown"] >= 0.5
    assert abstained["heldout"] <= 0.25 and abstained["seen"] <= 0.1
