"""Knowledge injection, both ways: `model.add` on the pretrained Sequential model, and a Functional model.

Run from the repository root after `make install` (or inside `make demo`'s .venv):

    .venv/bin/python examples/01_knowledge_injection.py

1. `model.add(KnowledgeInjectionLayer(kg, templates=templates))`: the model hands
   added layers hidden states only, so it adds a `FactDatastore` in the layer's
   place, a kNN datastore keyed by the model's own hidden states
   over the KG's facts, so held-out subjects (never in any training text) get
   their facts from the KG. Then `model.fit` fine-tunes the whole model on the
   fine-tuning sentences, and the datastore's keys are refreshed to follow the
   trained backbone.
2. A Functional model: the EntityLinker's ids go in beside the token ids, the
   layer fuses each linked entity's KG representation into the hidden states
   (ERNIE-style gate), and a fact pointer copies whole multi-token names. This
   is the bench's `knowledge` method, fine-tuned here for a few epochs.
"""

import os

import keras
import numpy as np

import kfine
from kfine.datasets.geonames import default_kg_files
from kfine.evaluation.evaluate import judge_prompts
from kfine.evaluation.metrics import rates
from kfine.knowledge.linker import EntityLinker
from kfine.knowledge.task import QUICK, FactTask
from kfine.layers import KnowledgeInjectionLayer
from kfine.models.batches import token_batches
from kfine.models.generation import Generator
from kfine.models.shipped import shipped_model_path
from kfine.training.knowledge import fine_tune_knowledge
from kfine.training.mle import next_token_loss

OUT = "runs/example_01"
files = default_kg_files()
task = FactTask.from_files(files["triples"], files["templates"], files["aliases"], size=QUICK)
heldout = task.evaluation_prompts("heldout")[:100]
paraphrase = task.evaluation_prompts("paraphrase")[:100]


def heldout_accuracy(generator):
    return rates(judge_prompts(generator, task.knowledge_graph, heldout))["accuracy"]


# === 1. The model.add path ===
model = kfine.load_model(shipped_model_path())
print("pretrained model alone, held-out accuracy:", heldout_accuracy(Generator(model, model.tokenizer)))
# The model KG: the unknown split's facts removed, as every method gets it.
model.add(KnowledgeInjectionLayer(task.model_graph, templates=task.templates, name="knowledge_injection"))
model.summary()
generator = Generator(model, model.tokenizer)
print("with model.add(KnowledgeInjectionLayer(...)), held-out accuracy:", heldout_accuracy(generator))

# Fine-tune with model.fit: the output is the log of the mixed distribution, so the
# usual next-token loss trains the backbone through the datastore's vote.
dataset = token_batches(model.tokenizer, task.finetune_sentences, model.sequence_length, 32, shuffle_seed=0)
model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-3), loss=next_token_loss())
model.fit(dataset, epochs=3)
# The keys were made by the backbone before fit: recompute them with the trained one.
model.get_layer("knowledge_injection").refresh(model, task.model_graph, task.templates)
print("after model.fit, held-out accuracy:", heldout_accuracy(generator),
      "paraphrase accuracy:", rates(judge_prompts(generator, task.knowledge_graph, paraphrase))["accuracy"])
prompt = paraphrase[0][0].text
print(repr(prompt), "->", generator.generate([prompt])[0])

# It saves as one .keras file (datastore included) and loads with safe_mode on.
os.makedirs(OUT, exist_ok=True)
model.save(f"{OUT}/model_add.keras")
loaded = keras.models.load_model(f"{OUT}/model_add.keras", safe_mode=True)
token_ids = np.array([model.tokenizer.encode(prompt)], "int32")
assert np.array_equal(keras.ops.convert_to_numpy(loaded(token_ids)), keras.ops.convert_to_numpy(model(token_ids)))

# === 2. The Functional path: token ids + the linker's entity ids ===
language_model = kfine.load_model(shipped_model_path())
linker = EntityLinker(task.model_graph, language_model.tokenizer)
token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
entity_ids = keras.Input(shape=(None,), dtype="int32", name="entity_ids")
hidden_states = language_model.hidden_states(token_ids)
fused = KnowledgeInjectionLayer(task.model_graph, mode="gated", entity_head=False)([hidden_states, entity_ids])
functional = keras.Model([token_ids, entity_ids], language_model.head(fused))
text = "Adelaide is a city in"
ids = np.array([language_model.tokenizer.encode(text)], "int32")
print("functional model output:", functional([ids, np.array([linker.entity_ids_per_token(ids[0].tolist())])]).shape)

# The bench's `knowledge` method builds that model plus a fact pointer and fine-tunes it
# (TensorBoard, with the KG embeddings in the projector: tensorboard --logdir runs/example_01).
generator = fine_tune_knowledge(task, shipped_model_path(), seed=0, log_dir=f"{OUT}/knowledge", quick=True, verbose=1)
print("knowledge method, held-out accuracy:", heldout_accuracy(generator))
print(repr(text), "->", generator.generate([text])[0])
