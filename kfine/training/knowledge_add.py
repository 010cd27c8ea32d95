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
"""

from kfine.layers import KnowledgeInjectionLayer
from kfine.models.generation import Generator
from kfine.training.baseline import fine_tune_baseline


def fine_tune_knowledge_add(task, pretrained, seed, log_dir, quick=False, verbose=0):
    """The baseline's fine-tune, then `model.add(KnowledgeInjectionLayer(...))` over the model's KG."""
    model = fine_tune_baseline(task, pretrained, seed, log_dir, quick=quick, verbose=verbose).model
    # Only the training templates key the datastore; the paraphrase one stays unseen.
    layer = KnowledgeInjectionLayer(task.model_graph, templates=task.templates, name="knowledge_injection")
    # What `model.add(layer)` does, with a progress bar when verbose.
    model.add(layer.for_language_model(model, verbose=verbose))
    return Generator(model, model.tokenizer)
