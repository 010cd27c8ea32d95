"""Knowledge through `model.add`: the pretrained Sequential model gains a KG datastore.

The `model.add` path of `KnowledgeInjectionLayer`, as a user writes it: load
the pretrained `CausalLanguageModel`, `model.add(KnowledgeInjectionLayer(kg,
templates=templates))`, then `model.fit` on the finetune sentences. The
model hands added layers hidden states, logits and token ids, so what it adds
is a `FactDatastore` (kNN-LM) keyed by the model's own hidden states over
every fact of the model's KG: a prompt about a subject that never appeared in
training text finds the keys of that subject's facts and copies the object's
name token by token. The fine-tune goes through the datastore's mixture with
a small learning rate, and the keys are recomputed after it: the baseline's
fine-tune (30 epochs at 2e-3 before the datastore) moves the hidden states so
far that a wording the datastore does not hold (the paraphrase split) no
longer finds its keys (measured on the GPT-2 default: paraphrase 0.70 with
this fine-tune or none, 0.11 after the baseline's; docs/methods/knowledge.md).
`KnowledgeAddGenerator.update_knowledge(kg)` rebuilds the datastore from an
edited KG, with no gradient step.
"""

import keras
import tensorflow as tf

from kfine.errors import KfineError
from kfine.layers import FactDatastore, KnowledgeInjectionLayer
from kfine.models.generation import Generator
from kfine.models.loading import load_model
from kfine.training.baseline import fit_finetune_sentences

QUICK_EPOCHS = 2
FULL_EPOCHS = 3
LEARNING_RATE = 1e-4


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
                                       temperature=old.temperature, interpolation=old.interpolation,
                                       context=old.context, match_subjects=old.mention_table_size > 0, name=old.name)
        self.model.pop(rebuild=False)
        self.model.add(new)
        # The traced generation loop holds the old datastore's weights.
        self._loop = tf.function(self._sample, reduce_retracing=True)


def fine_tune_knowledge_add(task, pretrained, seed, log_dir, quick=False, verbose=0):
    """`model.add(KnowledgeInjectionLayer(...))` over the model's KG, then `model.fit` through the datastore."""
    keras.utils.set_random_seed(seed)  # before loading: layers draw their dropout seeds when built
    model = load_model(pretrained)
    # Only the training templates key the datastore; the paraphrase one stays unseen.
    layer = KnowledgeInjectionLayer(task.model_graph, templates=task.templates, name="knowledge_injection")
    # What `model.add(layer)` does, with a progress bar when verbose.
    model.add(layer.for_language_model(model, verbose=verbose))
    fit_finetune_sentences(model, task, seed, log_dir, QUICK_EPOCHS if quick else FULL_EPOCHS, LEARNING_RATE, verbose)
    # The keys were made by the backbone before fit: recompute them with the trained one.
    model.layers[-1].refresh(model, task.model_graph, task.templates, verbose=verbose)
    return KnowledgeAddGenerator(model, task.templates)
