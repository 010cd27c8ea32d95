"""FactTask (splits, sizes, prompts), evaluation, perplexity and the reports."""

import math

import keras
import numpy as np
import pytest

from kfine.errors import TemplateError
from kfine.evaluation.evaluate import evaluate_splits, judge_prompts
from kfine.evaluation.metrics import ABSTAINED, CORRECT, HALLUCINATED
from kfine.evaluation.perplexity import perplexity
from kfine.evaluation.report import results_table, write_chart
from kfine.knowledge import Templates
from kfine.knowledge.task import FULL, QUICK, SPLITS, FactTask, TaskSize
from kfine.models.causal_lm import build_causal_lm
from kfine.models.generation import Generator
from people_kg import PEOPLE_TEMPLATES, TINY_ARCHITECTURE

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_splits_and_sizes():
    assert SPLITS == ("seen", "heldout", "unknown", "unknown-inferable", "paraphrase", "novel-wording", "multihop")
    assert FULL == TaskSize(None, None)
    assert (QUICK.finetune_subjects, QUICK.prompts_per_split) == (150, 200)


def test_prompts_of_each_split_ask_the_right_subjects(people_task):
    splits = people_task.splits
    groups = {"seen": "finetune", "heldout": "heldout", "unknown": "unknown", "unknown-inferable": "unknown",
              "paraphrase": "heldout"}
    # The people KG links people only to cities, companies and instruments: nothing unknown is inferable.
    assert people_task.evaluated_splits == ("seen", "heldout", "unknown", "paraphrase")
    for split in people_task.evaluated_splits:
        prompts = people_task.evaluation_prompts(split)
        assert prompts
        for prompt, gold in prompts:
            assert splits.group_of(prompt.subject) == groups[split]
            assert gold == people_task.knowledge_graph.objects(prompt.subject, prompt.relation) and gold
            paraphrase = PEOPLE_TEMPLATES[prompt.relation][-1]
            assert (prompt.template == paraphrase) == (split == "paraphrase")
            assert prompt.text == Templates.prompt(prompt.template, prompt.subject)


def test_the_model_never_sees_unknown_facts_nor_evaluation_subjects_in_text(people_task):
    model_graph = people_task.model_graph
    for prompt, _ in people_task.evaluation_prompts("unknown"):
        assert not model_graph.objects(prompt.subject, prompt.relation)
    hidden = {prompt.subject for split in ("heldout", "unknown") for prompt, _ in people_task.evaluation_prompts(split)}
    text = " ".join(people_task.finetune_sentences)
    assert hidden and not any(subject in text for subject in hidden)
    paraphrase_words = ["hails from", "employed by", "at home"]
    assert not any(words in text for words in paraphrase_words)


def test_heldout_sentences_state_heldout_facts(people_task):
    sentences = people_task.heldout_sentences
    assert sentences == people_task.verbalizer.sentences(people_task.splits.heldout)
    assert len(sentences) == len(people_task.splits.heldout) * 2  # two training templates a relation


def test_a_smaller_size_subsamples_deterministically(people_task):
    small = TaskSize(finetune_subjects=3, prompts_per_split=5)
    task = FactTask(people_task.knowledge_graph, people_task.templates, split_seed=0, size=small)
    again = FactTask(people_task.knowledge_graph, people_task.templates, split_seed=0, size=small)
    assert len({subject for subject, _, _ in task.finetune_triples}) == 3
    assert set(task.finetune_triples) <= set(people_task.finetune_triples)
    for split in task.evaluated_splits:
        prompts = task.evaluation_prompts(split)
        assert len(prompts) == 5
        assert prompts == again.evaluation_prompts(split)
        assert {prompt for prompt, _ in prompts} <= {prompt for prompt, _ in people_task.evaluation_prompts(split)}


def test_quick_keeps_a_small_kg_whole(people_task):
    quick = FactTask(people_task.knowledge_graph, people_task.templates, size=QUICK)
    for split in SPLITS:
        assert quick.evaluation_prompts(split) == people_task.evaluation_prompts(split)


def test_unknown_split_name(people_task):
    with pytest.raises(ValueError, match="Received: split='test'"):
        people_task.evaluation_prompts("test")


def test_templates_must_fit_the_kg(people_task):
    templates = Templates({relation: PEOPLE_TEMPLATES[relation] for relation in ("born_in", "plays")})
    with pytest.raises(TemplateError, match="works_for"):
        FactTask(people_task.knowledge_graph, templates)


# === Evaluation ===


class CannedGenerator:
    """Answers each prompt from a dict; records what it was asked."""

    def __init__(self, answers):
        self.answers = answers
        self.asked = []

    def generate(self, prompts, max_new_tokens):
        self.asked.append((list(prompts), max_new_tokens))
        return [self.answers.get(prompt, "Blorptown .") for prompt in prompts]


def test_judge_prompts(people_task):
    prompts = people_task.evaluation_prompts("heldout")[:3]
    (first, first_gold), (second, _), (third, _) = prompts
    generator = CannedGenerator({first.text: f"{sorted(first_gold)[0]} .", second.text: "unknown ."})
    judgements = judge_prompts(generator, people_task.knowledge_graph, prompts, max_new_tokens=7)
    assert generator.asked == [([first.text, second.text, third.text], 7)]
    assert [judgement.verdict for judgement in judgements] == [CORRECT, ABSTAINED, HALLUCINATED]
    assert judgements[2].invalid_entity


def test_evaluate_splits(people_task):
    results = evaluate_splits(CannedGenerator({}), people_task, SPLITS)
    assert list(results) == list(SPLITS)
    for split, (split_rates, judgements) in results.items():
        assert len(judgements) == len(people_task.evaluation_prompts(split))
        if split not in people_task.evaluated_splits:
            assert not judgements  # no prompt: its rates are undefined
            continue
        assert split_rates["hallucination_rate"] == split_rates["invalid_entity_rate"] == 1.0


# === Perplexity ===


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size(people_tokenizer, people_task):
    model = build_causal_lm(people_tokenizer.vocabulary, dropout=0.0, **TINY_ARCHITECTURE)
    model.head.kernel.assign(np.zeros(model.head.kernel.shape, "float32"))
    generator = Generator(model, people_tokenizer)
    assert perplexity(generator, people_task.heldout_sentences[:10], batch_size=4) == pytest.approx(
        people_tokenizer.vocabulary_size, rel=1e-4
    )


def test_perplexity_rewards_the_right_next_token(people_tokenizer):
    """A model that always predicts [EOS] is perfect on empty sentences and bad elsewhere."""
    model = build_causal_lm(people_tokenizer.vocabulary, dropout=0.0, **TINY_ARCHITECTURE)
    model.head.kernel.assign(np.zeros(model.head.kernel.shape, "float32"))
    bias = np.zeros(people_tokenizer.vocabulary_size, "float32")
    bias[people_tokenizer.eos_id] = 20.0
    model.head.bias.assign(bias)
    generator = Generator(model, people_tokenizer)
    assert perplexity(generator, [""]) == pytest.approx(1.0, abs=1e-4)
    assert perplexity(generator, ["Alda Varenko plays the harp."]) > 1e3


def test_perplexity_of_no_sentences_is_nan(tiny_model, people_tokenizer):
    assert math.isnan(perplexity(Generator(tiny_model, people_tokenizer), []))


# === Reports ===

ROWS = [
    {"method": "baseline", "split": split, "metric": metric, "mean": mean, "std": 0.01, "n_seeds": 3, "n_prompts": 40}
    for split in ("seen", "heldout", "unknown", "paraphrase")
    for metric, mean in (("accuracy", 0.25), ("hallucination_rate", 0.5), ("abstention_rate", 0.25),
                         ("invalid_entity_rate", 0.125))
] + [{"method": "baseline", "split": "heldout", "metric": "perplexity", "mean": 12.345, "std": 0.5, "n_seeds": 3,
      "n_prompts": 40},
     {"method": "other", "split": "seen", "metric": "accuracy", "mean": float("nan"), "std": float("nan"),
      "n_seeds": 3, "n_prompts": 7},
     {"method": "chance", "split": "seen", "metric": "accuracy", "mean": 0.5, "std": 0.0, "ci_low": 0.375,
      "ci_high": 0.625, "n_seeds": 0, "n_prompts": 40}]


def test_results_table():
    table = results_table(ROWS)
    lines = table.splitlines()
    assert lines[0] == "| method | split | n | acc | halluc. | abstain | invalid | ppl |"
    assert lines[1] == "|---|---|---|---|---|---|---|---|"
    # The reference rows come first, exact (no std), with their interval over prompts.
    assert lines[2] == "| chance | seen | 40 | 0.50 [0.38, 0.62] | – | – | – | – |"
    assert lines[3] == "| baseline | seen | 40 | 0.25 ± 0.01 | 0.50 ± 0.01 | 0.25 ± 0.01 | 0.12 ± 0.01 | – |"
    assert lines[4] == ("| baseline | heldout | 40 | 0.25 ± 0.01 | 0.50 ± 0.01 | 0.25 ± 0.01 | 0.12 ± 0.01 "
                        "| 12.3 ± 0.5 |")
    assert [line.split(" | ")[1] for line in lines[3:7]] == ["seen", "heldout", "unknown", "paraphrase"]
    assert "| other | seen | 7 | – |" in table
    assert "mean ± std over 3 seed(s) [95% bootstrap interval over the n prompts of the split]" in table


def test_write_chart(tmp_path):
    path = tmp_path / "chart.png"
    write_chart(ROWS, str(path))
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR"
    image = keras.utils.load_img(str(path))
    assert image.size[0] > 100 and image.size[1] > 100
