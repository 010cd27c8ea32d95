"""The `constraint` method (knowledge + TransE regularizer + semantic constraint loss) on the people KG."""

import os
import types

import keras
import numpy as np
import pytest

from kfine.evaluation.evaluate import judge_prompts
from kfine.evaluation.metrics import rates
from kfine.knowledge.graph import KnowledgeGraph
from kfine.knowledge.linker import EntityLinker
from kfine.layers import KnowledgeConstraintRegularizer, KnowledgeInjectionLayer
from kfine.models.constrained_decoding import constrained
from kfine.models.loading import load_model
from kfine.training.constraint import (
    ConstrainedKnowledgeLanguageModel,
    KnowledgeConstraintLoss,
    build_constrained_model,
    fine_tune_constraint,
    valid_fact_slots,
)
from kfine.training.knowledge import knowledge_examples


def test_constraint_loss_is_minus_log_of_the_valid_mass():
    logits = np.array([[[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]], "float32")
    valid = np.array([[[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]], "float32")  # the second position is unconstrained
    probabilities = np.exp(logits[0, 0]) / np.exp(logits[0, 0]).sum()
    expected = -np.log(probabilities[0] + probabilities[1])
    assert float(KnowledgeConstraintLoss()(valid, logits)) == pytest.approx(expected, rel=1e-5)
    assert float(KnowledgeConstraintLoss()(np.zeros_like(valid), logits)) == 0.0
    # Serializable like any Keras loss.
    revived = keras.losses.deserialize(keras.losses.serialize(KnowledgeConstraintLoss()))
    assert isinstance(revived, KnowledgeConstraintLoss)


@pytest.fixture(scope="module")
def constraint_run(people_task, pretrained_dir, tmp_path_factory):
    log_dir = str(tmp_path_factory.mktemp("constraint_tb"))
    return fine_tune_constraint(people_task, pretrained_dir, seed=0, log_dir=log_dir, quick=True), log_dir


def test_valid_facts_mark_the_facts_of_the_sentences_relation(people_task, pretrained_dir):
    language_model = load_model(pretrained_dir)
    graph = people_task.model_graph
    model = build_constrained_model(language_model, graph)
    model.injection.build(((None, None, language_model.hidden_dim), (None, None)))
    relations, objects = model.injection.fact_relations.numpy(), model.injection.fact_objects.numpy()
    arrays = knowledge_examples(people_task, EntityLinker(graph, language_model.tokenizer), language_model.tokenizer,
                                (relations, objects))
    valid = valid_fact_slots(model, arrays, graph)
    targets = arrays["fact_targets"]
    assert valid.shape == (*targets.shape, 1 + model.injection.max_degree)
    slots = targets > 0
    # Exactly the entity slots are constrained, the target fact is always valid, column 0 never is.
    assert np.array_equal(valid.any(axis=-1), slots)
    assert np.all(np.take_along_axis(valid, targets[..., None], axis=-1)[slots] == 1.0)
    assert not valid[..., 0].any()
    # People have one fact per relation: the valid slots are the target alone.
    assert valid.sum() == slots.sum()


def test_no_true_answer_is_a_negative_of_the_constraint_loss():
    # A multi-valued relation, and a slot of another relation whose object is a true answer too.
    graph = KnowledgeGraph([("Avel", "neighbour", "Brask"), ("Avel", "neighbour", "Corin"), ("Avel", "ally", "Brask"),
                            ("Avel", "ally", "Dovia"), ("Avel", "capital", "Elm")], name="borders")
    injection = KnowledgeInjectionLayer(graph, entity_dim=8)
    injection([np.zeros((1, 1, 4), "float32"), np.zeros((1, 1), "int32")])
    row = graph.entity_id("Avel") + 1
    relations, objects = injection.fact_relations.numpy()[row], injection.fact_objects.numpy()[row]
    slots = [(graph.relations[r], graph.entities[o - 1]) for r, o in zip(relations, objects) if o > 0]
    target = slots.index(("neighbour", "Brask")) + 1
    arrays = {"entity_ids": np.array([[row]], "int32"), "fact_targets": np.array([[target]], "int32")}
    valid = valid_fact_slots(types.SimpleNamespace(injection=injection), arrays, graph)[0, 0, 1:]
    allowed = {slot for slot, is_valid in zip(slots, valid) if is_valid}
    assert allowed == {("neighbour", "Brask"), ("neighbour", "Corin"), ("ally", "Brask")}, slots


def test_constraint_model_trains_with_both_constraints(constraint_run):
    generator, log_dir = constraint_run
    model = generator.model
    assert isinstance(model, ConstrainedKnowledgeLanguageModel) and model.constraint_weight > 0
    assert isinstance(model.injection.encoder.embeddings_regularizer, KnowledgeConstraintRegularizer)
    assert "constraint_loss" in [metric.name for metric in model.metrics]
    assert model.losses  # the regularizer's term
    assert os.listdir(os.path.join(log_dir, "fit"))


def test_constraint_model_saves_and_loads_identically(constraint_run, tmp_path):
    model = constraint_run[0].model
    path = os.path.join(tmp_path, "constraint.keras")
    model.save(path)
    restored = keras.models.load_model(path, safe_mode=True)
    assert isinstance(restored, ConstrainedKnowledgeLanguageModel)
    assert restored.constraint_weight == model.constraint_weight
    inputs = {"token_ids": np.array([[2, 10, 11, 12, 0]], "int32"), "entity_ids": np.array([[0, 1, 1, 0, 0]], "int32")}
    for key in ("logits", "fact_scores"):
        np.testing.assert_allclose(model(inputs)[key], restored(inputs)[key], atol=1e-6)


def test_constrained_decoding_over_the_knowledge_generator(people_task, constraint_run):
    generator = constrained(constraint_run[0], people_task.model_graph, people_task.templates)
    for split in ("heldout", "unknown", "paraphrase"):
        judged = judge_prompts(generator, people_task.knowledge_graph, people_task.evaluation_prompts(split))
        split_rates = rates(judged)
        assert split_rates["invalid_entity_rate"] == 0.0, split
        if split == "unknown":
            assert split_rates["abstention_rate"] == 1.0
