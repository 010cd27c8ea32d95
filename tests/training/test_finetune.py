"""`kfine finetune`: a saved knowledge model reloads with identical answers and refuses another KG."""

import os

import pytest

from kfine.errors import ModelError
from kfine.knowledge.graph import KnowledgeGraph
from kfine.training.finetune import fine_tune, load_fine_tuned


@pytest.fixture(scope="module")
def fine_tuned_dir(people_task, pretrained_dir, tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp("finetuned") / "people-knowledge")
    metadata = fine_tune(people_task, pretrained_dir, "knowledge", out_dir, quick=True, verbose=0)
    assert set(metadata["results"]) == {"seen", "heldout", "unknown", "paraphrase"}
    return out_dir


def test_reloaded_model_answers_like_the_saved_one(people_task, fine_tuned_dir):
    prompts = [prompt.text for prompt, _ in people_task.evaluation_prompts("heldout")][:6]
    first = load_fine_tuned(fine_tuned_dir).generate(prompts)
    second = load_fine_tuned(fine_tuned_dir, people_task.model_graph).generate(prompts)
    assert first == second and all(first)
    assert os.path.isfile(os.path.join(fine_tuned_dir, "knowledge_graph", "triples.tsv"))


def test_loading_against_a_different_kg_fails_clearly(people_task, fine_tuned_dir):
    other = KnowledgeGraph([*people_task.model_graph.triples, ("Someone New", "plays", "harp")])
    with pytest.raises(ModelError, match="fine-tuned with KG") as raised:
        load_fine_tuned(fine_tuned_dir, other)
    assert "\n" not in str(raised.value)


def test_a_pretrained_model_dir_is_not_a_fine_tuned_one(pretrained_dir):
    with pytest.raises(ModelError, match="not a `kfine finetune` output"):
        load_fine_tuned(pretrained_dir)
