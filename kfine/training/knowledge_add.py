"""Knowledge through `model.add`: the pretrained Sequential model gains a KG datastore.

The `model.add` path of `KnowledgeInjectionLayer`, as a user writes it: load
the pretrained `CausalLanguageModel`, fine-tune it like the baseline, then
`model.add(KnowledgeInjectionLayer(kg, templates=templates))`. The model
hands added layers hidden states only, so what it adds is a `FactDatastore`
(kNN-LM) keyed by the fine-tuned model's own hidden states over every fact
of the model's KG: a prompt about a subject that never appeared in training
text finds the keys of that subject's facts and copies the object's name
token by token. The datastore is made after fine-tuning, so its keys match
the final backbone (keys made before would go stale as the backbone trains).
`KnowledgeAddGenerator.update_knowledge(kg)` rebuilds the datastore from an
edited KG, with no gradient step.
"""

import tensorflow as tf

from kfine.errors import KfineError
from kfine.layers import FactDatastore, KnowledgeInjectionLayer
from kfine.models.generation import Generator
from kfine.training.baseline import fine_tune_baseline


class KnowledgeAddGenerator(Generator):
    """Generation with a `CausalLanguageModel` whose last layer is a `FactDatastore`, which KG edits reach.

    Args:
        model: `CausalLanguageModel` ending in a `FactDatastore`.
        templates: `Templates` the datastore's keys are written with.
        **kwargs: `Generator` arguments.
    """

    def __init__(self, model, templates, **kwargs):
        super().__init__(model, model.tokenizer, **kwargs)
        if not isinstance(model.layers[-1], FactDatastore):
            raise KfineError(f"model: its last layer must be a FactDatastore. Received: {model.layers[-1].name!r}")
        self.templates = templates

    def update_knowledge(self, knowledge_graph):
        """Answers from `knowledge_graph` from now on: the datastore is rebuilt from its facts.

        The keys are the model's hidden states over the new facts (what
        `FactDatastore.from_model` computes); no weight changes. Any KG the
        tokenizer can write works, new entities included.
        """
        old = self.model.layers[-1]
        new = FactDatastore.from_model(self.model, knowledge_graph, self.templates, top_k=old.top_k,
                                       temperature=old.temperature, interpolation=old.interpolation, name=old.name)
        self.model.pop(rebuild=False)
        self.model.add(new)
        # The traced generation loop holds the old datastore's weights.
        self._loop = tf.function(self._sample, reduce_retracing=True)


def fine_tune_knowledge_add(task, pretrained, seed, log_dir, quick=False, verbose=0):
    """The baseline's fine-tune, then `model.add(KnowledgeInjectionLayer(...))` over the model's KG."""
    model = fine_tune_baseline(task, pretrained, seed, log_dir, quick=quick, verbose=verbose).model
    # Only the training templates key the datastore; the paraphrase one stays unseen.
    layer = KnowledgeInjectionLayer(task.model_graph, templates=task.templates, name="knowledge_injection")
    # What `model.add(layer)` does, with a progress bar when verbose.
    model.add(layer.for_language_model(model, verbose=verbose))
    return KnowledgeAddGenerator(model, task.templates)
