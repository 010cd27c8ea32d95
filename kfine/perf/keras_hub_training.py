"""Fine-tuning a keras-hub preset: kfine's step against keras-hub's own, LoRA, and knowledge injection.

A GPT-2 preset as `kfine pretrain --architecture gpt2` writes one (the
shipped LM's dimensions, a byte-level BPE tokenizer learned from the
bundled KG's sentences, random weights) is built on the spot. Every
contender loads that same preset and trains on the same batch of real
sentences packed end to end (see `training.packed_batch`):

- `kfine_preset_lm`: `kfine.load_model(preset)`, the `CausalLanguageModel`
  wrapping the backbone, compiled as `train_mle` compiles it (the step of
  the `baseline` method and of pretraining); `kfine_preset_lm_control` is
  an identical second one, the measurement's own noise;
- `keras_hub_causal_lm`: `keras_hub.models.CausalLM.from_preset(preset)`,
  its own `fit` step on the batch its preprocessor would make (ids,
  padding mask, sample weights), with the same optimizer, its own default
  loss and XLA setting, and no metrics (kfine's step has none);
- `kfine_preset_lora`: as `kfine_preset_lm` under `--lora-rank 4`;
- `kfine_preset_injected`: the preset's LM with a `KnowledgeInjectionLayer`
  before the head (`training.injected_lm`), compiled as `kfine_preset_lm`.

The steps are timed in turns (`timing.interleaved`); every ratio is the
median of the per-round ratios (`timing.paired_ratio`).
"""

import inspect
import os
import tempfile

import keras_hub
import numpy as np
import tensorflow as tf

from kfine.knowledge.linker import EntityLinker
from kfine.knowledge.verbalizer import Verbalizer
from kfine.models.loading import load_model, load_options
from kfine.models.preset_builder import build_preset
from kfine.perf.timing import interleaved, min_ratio, paired_ratio
from kfine.perf.training import DEFAULT_JIT_COMPILE, LEARNING_RATE, fit_runner, injected_lm, packed_batch
from kfine.training.mle import compile_mle, mle_optimizer
from kfine.training.pretrain_preset import PRESET_DIMS, pretrain_preset

LORA_RANK = 4
# The vocabulary `kfine pretrain --architecture gpt2` learns by default.
VOCABULARY_SIZE = inspect.signature(pretrain_preset).parameters["vocabulary_size"].default
CONTROL = "kfine_preset_lm_control"


def kfine_runner(model, batch, steps):
    """`model` compiled as `train_mle` compiles it; a callable fitting `steps` steps on `batch`."""
    compile_mle(model, LEARNING_RATE, decay_steps=1000, jit_compile=DEFAULT_JIT_COMPILE)
    return fit_runner(model, batch, steps)


def keras_hub_batch(token_ids, targets):
    """The `(inputs, targets, sample_weight)` a keras-hub preprocessor makes of a packed kfine batch.

    `token_ids` and `targets` are kfine ids (the preset's plus one, see
    `PresetTokenizer`); a packed batch has no padding, so the padding mask
    and the sample weights are all ones.
    """
    inputs = {"token_ids": token_ids - 1, "padding_mask": tf.ones_like(token_ids, tf.bool)}
    return inputs, targets - 1, tf.ones_like(targets, tf.float32)


def keras_hub_runner(preset, token_ids, targets, steps):
    """keras-hub's `CausalLM` of `preset` and its `fit` step on `keras_hub_batch`; returns `(runner, jit_compile)`."""
    causal_lm = keras_hub.models.CausalLM.from_preset(preset, preprocessor=None)
    causal_lm.compile(optimizer=mle_optimizer(LEARNING_RATE, decay_steps=1000), weighted_metrics=[])
    return fit_runner(causal_lm, keras_hub_batch(token_ids, targets), steps), causal_lm.jit_compile


def measure_keras_hub_training(graph, templates, size):
    """Times the contenders' train steps in turns; returns `(ratios, raw)`.

    Args:
        graph: `KnowledgeGraph` (the bundled one): the tokenizer's corpus, the
            batch's text and the injected knowledge.
        templates: `Templates` of `graph`.
        size: `PerfSize` (`batch_size`, `train_steps`, `training_repeats`).
    """
    sentences = Verbalizer(templates).sentences(graph.triples, rng=0)
    steps = size.train_steps
    with tempfile.TemporaryDirectory() as scratch:
        preset = os.path.join(scratch, "gpt2")
        build_preset("gpt2", sentences, preset, vocabulary_size=VOCABULARY_SIZE, **PRESET_DIMS)
        language_model = load_model(preset)
        tokenizer = language_model.tokenizer
        batch = packed_batch(tokenizer, EntityLinker(graph, tokenizer), graph, templates, size.batch_size,
                             language_model.sequence_length)
        token_ids, entity_ids, targets = (tf.constant(batch[key]) for key in ("token_ids", "entity_ids", "targets"))
        runners = {"kfine_preset_lm": kfine_runner(language_model, (token_ids, targets), steps)}
        runners["keras_hub_causal_lm"], keras_hub_jit_compile = keras_hub_runner(preset, token_ids, targets, steps)
        with load_options(lora_rank=LORA_RANK):
            lora_model = load_model(preset)
        runners["kfine_preset_lora"] = kfine_runner(lora_model, (token_ids, targets), steps)
        injected = injected_lm(load_model(preset), graph)
        runners["kfine_preset_injected"] = kfine_runner(
            injected, ({"token_ids": token_ids, "entity_ids": entity_ids}, targets), steps
        )
        runners[CONTROL] = kfine_runner(load_model(preset), (token_ids, targets), steps)
        timings = interleaved(runners, size.training_repeats)

    lm = "kfine_preset_lm"
    pairs = {
        "kerashub_lm_step_vs_kfine": ("keras_hub_causal_lm", lm),
        "lora_step_vs_full": ("kfine_preset_lora", lm),
        "kerashub_injection_overhead": ("kfine_preset_injected", lm),
    }
    ratios = {name: paired_ratio(timings, *pair) for name, pair in pairs.items()}
    step = {name: timing["seconds"] / steps for name, timing in timings.items()}
    tokens_per_step = size.batch_size * language_model.sequence_length
    raw = {
        "preset": {"architecture": "gpt2", **PRESET_DIMS, "vocabulary_size": tokenizer.vocabulary_size - 1},
        "batch_size": size.batch_size,
        "sequence_length": language_model.sequence_length,
        "lora_rank": LORA_RANK,
        "trainable_parameters": {"full": _trainable(language_model), "lora": _trainable(lora_model)},
        "jit_compile": {"kfine": DEFAULT_JIT_COMPILE, "keras_hub": keras_hub_jit_compile},
        "steps_per_repeat": steps,
        "repeats": size.training_repeats,
        "step_seconds": step,
        "step_cpu_seconds": {name: timing["cpu_seconds"] / steps for name, timing in timings.items()},
        "tokens_per_second": {name: tokens_per_step / seconds for name, seconds in step.items()},
        # Two identical kfine LMs: how far apart the machine put the same work (1.0 on a quiet machine).
        "control_vs_lm": paired_ratio(timings, CONTROL, lm),
        # The same ratios in CPU seconds, which a shared machine's load bends less.
        "cpu_time": {name: paired_ratio(timings, *pair, cpu=True) for name, pair in pairs.items()},
        "min_of_rounds": {name: min_ratio(timings, *pair) for name, pair in pairs.items()},
        "timings": timings,
    }
    return ratios, raw


def _trainable(model):
    return int(sum(np.prod(variable.shape) for variable in model.trainable_variables))
