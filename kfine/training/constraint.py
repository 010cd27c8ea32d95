"""Knowledge constraints in training: a KG-plausibility regularizer and a semantic constraint loss.

The `constraint` method is the `knowledge` method plus two constraints
from the KG:

- `KnowledgeConstraintRegularizer` (TransE margin over corrupted facts,
  corruptions filtered against the KG) on the entity table of the
  injection's KG encoder;
- `KnowledgeConstraintLoss` (semantic loss, Xu et al. 2018) on the fact
  pointer at the entity slot: `-log` of the probability mass on the slots
  whose object the KG allows for the sentence's `(subject, relation)`. For a single-valued relation it repeats the
  pointer's cross-entropy; for a multi-valued one (a country's neighbours)
  it credits every valid object, where the cross-entropy wants the one
  named in the sentence.
"""

import functools

import keras
import numpy as np

from kfine.layers import KnowledgeConstraintRegularizer
from kfine.layers.layer_utils import fact_keys
from kfine.training.knowledge import KnowledgeLanguageModel, build_knowledge_model, train_knowledge_model

CONSTRAINT_WEIGHT = 1.0
REGULARIZER_STRENGTH = 0.1
# No valid class: a finite stand-in for log(0), so no NaN reaches the gradient.
_LARGE_NEGATIVE = -1e9


@keras.saving.register_keras_serializable(package="kfine")
class KnowledgeConstraintLoss(keras.losses.Loss):
    """Semantic loss: `-log` of the probability mass on the classes the KG allows.

    Args:
        name: str. Name of the loss.
        **kwargs: standard `keras.losses.Loss` arguments (`reduction`, `dtype`).

    Call arguments:
        y_true: 0/1 float or bool `(batch, ..., classes)`: the classes the
            KG allows at each position (e.g. fact slots or entity ids). A
            position with none carries no loss.
        y_pred: logits `(batch, ..., classes)`.

    Returns:
        Per example, the sum over its constrained positions of
        `-log sum_{valid c} softmax(y_pred)_c`; then reduced over the batch.

    Example:

    >>> loss = KnowledgeConstraintLoss()
    >>> float(loss([[1.0, 1.0, 0.0]], [[0.0, 0.0, 100.0]]))  # all mass on an invalid class
    99.3...
    """

    def __init__(self, name="knowledge_constraint", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        log_probabilities = keras.ops.log_softmax(keras.ops.cast(y_pred, "float32"), axis=-1)
        valid = keras.ops.cast(y_true, "float32") > 0
        log_mass = keras.ops.logsumexp(keras.ops.where(valid, log_probabilities, _LARGE_NEGATIVE), axis=-1)
        per_position = keras.ops.where(keras.ops.any(valid, axis=-1), -log_mass, 0.0)
        rank = len(per_position.shape)
        return keras.ops.sum(per_position, axis=tuple(range(1, rank))) if rank > 1 else per_position


@keras.saving.register_keras_serializable(package="kfine")
class ConstrainedKnowledgeLanguageModel(KnowledgeLanguageModel):
    """A `KnowledgeLanguageModel` trained with a knowledge-constraint loss on its fact pointer.

    `compute_loss` adds `constraint_weight * KnowledgeConstraintLoss` of
    the `fact_scores` output against the training input `valid_facts`
    (`(batch, sequence, 1 + max_degree)`, 1 on the fact slots the KG allows
    at the entity slot), and tracks it as the metric `constraint_loss`.
    Inference needs no `valid_facts`.

    Args:
        language_model: `CausalLanguageModel`.
        injection: `KnowledgeInjectionLayer`.
        constraint_weight: float. Weight of the constraint loss.
    """

    def __init__(self, language_model, injection, constraint_weight=CONSTRAINT_WEIGHT, **kwargs):
        super().__init__(language_model, injection, **kwargs)
        is_number = isinstance(constraint_weight, (int, float)) and not isinstance(constraint_weight, bool)
        if not is_number or constraint_weight < 0:
            raise ValueError(
                f"`constraint_weight` must be a non-negative float. Received: constraint_weight={constraint_weight!r}"
            )
        self.constraint_weight = float(constraint_weight)
        self.constraint_loss = KnowledgeConstraintLoss()
        self.constraint_tracker = keras.metrics.Mean(name="constraint_loss")

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        constraint = self.constraint_loss(x["valid_facts"], y_pred["fact_scores"])
        self.constraint_tracker.update_state(constraint)
        return loss + self.constraint_weight * constraint

    def get_config(self):
        return {**super().get_config(), "constraint_weight": self.constraint_weight}


def valid_fact_slots(model, arrays, knowledge_graph):
    """The `valid_facts` input: at each example's entity slot, the fact slots whose object the KG allows.

    A slot is valid when its object is an object of the sentence's
    `(subject, relation)` in `knowledge_graph` (whatever the slot's own
    relation), so the constraint loss never counts a true answer against the
    model, for multi-valued relations too.

    Args:
        model: a built `KnowledgeLanguageModel`.
        arrays: dict from `knowledge_examples` (`entity_ids`, `fact_targets`).
        knowledge_graph: `KnowledgeGraph` the model's injection was built from.

    Returns:
        float32 `(examples, length, 1 + max_degree)`; column 0 (no target) is 0.
    """
    rows = keras.ops.convert_to_numpy(model.injection.entity_rows(arrays["entity_ids"]))
    relations = model.injection.fact_relations.numpy()[rows]
    objects = model.injection.fact_objects.numpy()[rows]
    targets = arrays["fact_targets"]
    relation = np.take_along_axis(relations, np.maximum(targets - 1, 0)[..., None], axis=-1)
    # (subject, sentence's relation, slot's object) is a fact of the graph: table rows and objects are ids + 1.
    sizes = (knowledge_graph.num_relations, knowledge_graph.num_entities)
    facts = keras.ops.convert_to_numpy(fact_keys(*knowledge_graph.triple_ids.T, *sizes))
    keys = keras.ops.convert_to_numpy(fact_keys((rows - 1)[..., None], relation, objects - 1, *sizes))
    valid = np.isin(keys, facts) & (objects > 0) & (targets > 0)[..., None]
    return np.concatenate([np.zeros_like(valid[..., :1]), valid], axis=-1).astype("float32")


def build_constrained_model(language_model, knowledge_graph, seed=0, strength=REGULARIZER_STRENGTH,
                            constraint_weight=CONSTRAINT_WEIGHT):
    """The `knowledge` model with the TransE regularizer on its entity table (none at strength 0) and the
    constraint loss."""
    regularizer = KnowledgeConstraintRegularizer(knowledge_graph, strength=strength, seed=seed) if strength else None
    return build_knowledge_model(language_model, knowledge_graph, embeddings_regularizer=regularizer,
                                 model_class=ConstrainedKnowledgeLanguageModel, constraint_weight=constraint_weight)


def fine_tune_constraint(task, pretrained, seed, log_dir, quick=False, verbose=0, constraint_loss=True,
                         regularizer=True):
    """The `knowledge` method plus the KG regularizer and the knowledge-constraint loss.

    Args:
        constraint_loss: bool. Add the constraint loss (off: weight 0, still tracked).
        regularizer: bool. Put the TransE regularizer on the entity table.
        Both off, it trains as `knowledge` does: an ablation's reference
        (`examples/constraint_ablation.py`).
    """
    return train_knowledge_model(
        task, pretrained, seed, log_dir, quick=quick, verbose=verbose,
        make_model=functools.partial(build_constrained_model, seed=seed,
                                     strength=REGULARIZER_STRENGTH if regularizer else 0.0,
                                     constraint_weight=CONSTRAINT_WEIGHT if constraint_loss else 0.0),
        extra_inputs=lambda model, arrays: {"valid_facts": valid_fact_slots(model, arrays, task.model_graph)},
    )
