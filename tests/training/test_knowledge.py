"""The `knowledge` method on a KG of another domain: it must answer held-out facts the baseline cannot."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kfine.evaluation.evaluate import judge_prompts
from kfine.evaluation.metrics import rates
from kfine.training.baseline import fine_tune_baseline
from kfine.training.knowledge import KnowledgeLanguageModel, fine_tune_knowledge


@pytest.fixture(scope="module")
def knowledge_log_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tb"))


@pytest.fixture(scope="module")
def knowledge_generator(people_task, pretrained_dir, knowledge_log_dir):
    return fine_tune_knowledge(people_task, pretrained_dir, seed=0, log_dir=knowledge_log_dir)


def test_projector_shows_the_kg_embeddings_with_names(people_task, knowledge_generator, knowledge_log_dir):
    run = os.path.join(knowledge_log_dir, "fit", "train")
    with open(os.path.join(run, "projector_config.pbtxt"), encoding="utf-8") as file:
        config = file.read()
    assert "entities_metadata.tsv" in config and "relations_metadata.tsv" in config
    with open(os.path.join(run, "entities_metadata.tsv"), encoding="utf-8") as file:
        names = file.read().splitlines()
    assert names == people_task.model_graph.entities
    reader = tf.train.load_checkpoint(os.path.join(run, "embeddings.ckpt-1"))
    table = reader.get_tensor("entities/.ATTRIBUTES/VARIABLE_VALUE")
    entity_table = keras.ops.convert_to_numpy(knowledge_generator.model.injection.encoder.entity_table())
    np.testing.assert_allclose(table, entity_table[1:], atol=1e-6)


def heldout_accuracy(generator, task):
    return rates(judge_prompts(generator, task.knowledge_graph, task.evaluation_prompts("heldout")))["accuracy"]


@pytest.mark.slow
def test_knowledge_beats_baseline_on_heldout_facts(people_task, pretrained_dir, knowledge_generator, tmp_path):
    baseline = fine_tune_baseline(people_task, pretrained_dir, seed=0, log_dir=str(tmp_path))
    knowledge_accuracy = heldout_accuracy(knowledge_generator, people_task)
    baseline_accuracy = heldout_accuracy(baseline, people_task)
    assert knowledge_accuracy > baseline_accuracy
    assert knowledge_accuracy >= 0.6


def test_multi_token_names_are_copied_whole(people_task, knowledge_generator):
    prompts = [(prompt, gold) for prompt, gold in people_task.evaluation_prompts("heldout")
               if prompt.relation == "works_for"]
    assert prompts, "the held-out split should ask whom someone works for"
    completions = knowledge_generator.generate([prompt.text for prompt, _ in prompts])
    companies = {"Quillstone Works", "Brightwell Foundry", "Harrow & Sons", "Lumen Freight"}
    judged = judge_prompts(knowledge_generator, people_task.knowledge_graph, prompts)
    # Whatever fact the pointer picks, the copied object is a whole KG name, never a fragment.
    assert all(judgement.entity is not None for judgement in judged), completions
    assert any(judgement.entity in companies for judgement in judged)


def test_knowledge_model_saves_and_loads_identically(knowledge_generator, tmp_path):
    model = knowledge_generator.model
    path = os.path.join(tmp_path, "knowledge.keras")
    model.save(path)
    restored = keras.models.load_model(path, safe_mode=True)
    assert isinstance(restored, KnowledgeLanguageModel)
    token_ids = np.array([[2, 10, 11, 12, 0]], "int32")
    entity_ids = np.array([[0, 1, 1, 0, 0]], "int32")
    inputs = {"token_ids": token_ids, "entity_ids": entity_ids}
    for key in ("logits", "fact_scores"):
        np.testing.assert_allclose(model(inputs)[key], restored(inputs)[key], atol=1e-6)


def test_confidence_is_the_pointers_probability_and_tracks_correctness(people_task, knowledge_generator):
    prompts = people_task.evaluation_prompts("seen") + people_task.evaluation_prompts("heldout")
    texts, confidences = knowledge_generator.generate_with_confidence([p.text for p, _ in prompts], 16)
    assert texts == knowledge_generator.generate([p.text for p, _ in prompts], 16)
    assert all(0.0 < confidence <= 1.0 for confidence in confidences)
    rows = knowledge_generator.tokenizer.encode_batch([p.text for p, _ in prompts])
    entity_rows = [knowledge_generator.linker.entity_ids_per_token(row) for row in rows]
    picked, probabilities = knowledge_generator.pick_entities(rows, entity_rows)
    copied = [index for index, entity in enumerate(picked) if entity >= 0]
    assert copied and all(confidences[index] == probabilities[index] for index in copied)
    judgements = judge_prompts(knowledge_generator, people_task.knowledge_graph, prompts)
    correct = [j.confidence for j in judgements if j.verdict == "correct"]
    wrong = [j.confidence for j in judgements if j.verdict == "hallucinated"]
    assert correct and (not wrong or np.mean(correct) > np.mean(wrong))
