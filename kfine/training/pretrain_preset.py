"""Pretraining a keras-hub CausalLM (GPT-2, Llama or Gemma) from scratch into a preset.

The same corpus as `kfine.training.pretrain` (the pretrain split of a
verbalized KG), a tokenizer of the architecture's own kind learned from it,
and keras-hub's own `CausalLM.fit` on the raw sentences through the model's
preprocessor. The result is a keras-hub preset folder (with kfine's
`training.json` and model card beside the preset's files) that
`keras_hub.models.CausalLM.from_preset(folder)` loads without kfine.
"""

import time

import keras

from kfine.errors import KfineError
from kfine.models.optimizer import build_optimizer
from kfine.models.preset_builder import build_hub_causal_lm, check_architecture, save_preset, train_tokenizer
from kfine.training.pretrain import CORPUS_TEMPLATES, CORPUS_WORDING, pretrain_corpus, pretrain_record

PRESET_KIND = "keras-hub-causal-lm-preset"
# The width of kfine's own pretrained LM; Llama and Gemma use full (not grouped) attention at this size.
PRESET_DIMS = {"num_layers": 2, "hidden_dim": 128, "num_heads": 4, "intermediate_dim": 512, "sequence_length": 64}
# Prompts completed at once when the model card's seen-fact accuracy is measured.
GENERATE_BATCH_SIZE = 64


class PresetCompleter:
    """Greedy completions of a keras-hub `CausalLM`, as `judge_prompts` asks for them.

    Args:
        causal_lm: a keras-hub `CausalLM` with its preprocessor, compiled
            with `sampler="greedy"`.
        batch_size: int. Prompts generated at once.
    """

    def __init__(self, causal_lm, batch_size=GENERATE_BATCH_SIZE):
        self.causal_lm = causal_lm
        self.batch_size = batch_size

    def generate(self, prompts, max_new_tokens=None):
        """The completion (prompt stripped) of each prompt in `prompts`.

        keras-hub bounds the whole sequence, not the new tokens: a completion
        runs to the end token or the preprocessor's sequence length, whatever
        `max_new_tokens` says (one length for every batch: one compiled
        generate function).
        """
        completions = []
        for start in range(0, len(prompts), self.batch_size):
            batch = list(prompts[start:start + self.batch_size])
            completions += list(self.causal_lm.generate(batch, strip_prompt=True))
        return completions


def _check_hyperparameters(epochs, batch_size, learning_rate, vocabulary_size, corpus_templates):
    for name, value in (("epochs", epochs), ("batch_size", batch_size), ("vocabulary_size", vocabulary_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise KfineError(f"{name} must be a positive integer. Received: {name}={value!r}")
    if not learning_rate > 0:
        raise KfineError(f"learning_rate must be positive. Received: learning_rate={learning_rate!r}")
    if corpus_templates not in CORPUS_TEMPLATES:
        raise KfineError(f"corpus_templates must be one of {', '.join(CORPUS_TEMPLATES)}. "
                         f"Received: corpus_templates={corpus_templates!r}")


def pretrain_preset(task, out_dir, architecture="gpt2", seed=0, epochs=40, batch_size=64, learning_rate=2e-3,
                    vocabulary_size=2000, log_dir=None, command=None, verbose=1, dims=None, corpus_templates="all"):
    """Pretrains a keras-hub CausalLM of `architecture` on `task`'s pretrain split and writes its preset.

    Args:
        task: `FactTask`. Supplies the KG, templates and subject split.
        out_dir: str. The preset folder, written atomically at the end.
        architecture: str. `"gpt2"` (byte-level BPE), `"llama"` or `"gemma"`
            (SentencePiece with byte fallback).
        seed: int. Seeds the tokenizer-independent parts: initialization,
            shuffling and dropout.
        epochs: int. Passes over the corpus.
        batch_size: int.
        learning_rate: float. Peak AdamW learning rate (cosine decay to 10%).
        vocabulary_size: int. Tokenizer vocabulary size (256 bytes included).
        log_dir: str or None. TensorBoard log directory.
        command: str. The command line, recorded in the model card.
        verbose: Keras verbosity (1: a progress bar).
        dims: dict overriding `PRESET_DIMS` (`build_hub_causal_lm` arguments;
            tests use tiny ones).
        corpus_templates: str. `"all"` or `"training"` (see
            `kfine.training.pretrain.pretrain`).

    Returns:
        The metadata dict written to `training.json` beside the preset.
    """
    import tensorflow as tf

    check_architecture(architecture)
    _check_hyperparameters(epochs, batch_size, learning_rate, vocabulary_size, corpus_templates)
    pretrain_triples, sentences = pretrain_corpus(task, corpus_templates)
    # Before the tokenizer: seeding drops the SentencePiece op of one made earlier (see `build_preset`).
    keras.utils.set_random_seed(seed)
    tokenizer = train_tokenizer(architecture, sentences, vocabulary_size)
    dims = {**PRESET_DIMS, **(dims or {})}
    causal_lm = build_hub_causal_lm(architecture, tokenizer, **dims)
    steps = max(1, epochs * -(-len(sentences) // batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps, alpha=0.1)
    # keras-hub's default loss and weighted accuracy (padding excluded); greedy decoding for the card.
    causal_lm.compile(optimizer=keras.optimizers.AdamW(learning_rate=schedule, weight_decay=0.01), sampler="greedy")
    # Raw strings: `CausalLM.fit` runs the preset's own preprocessor over them.
    dataset = tf.data.Dataset.from_tensor_slices(sentences).shuffle(len(sentences), seed=seed).batch(batch_size)
    callbacks = [keras.callbacks.TensorBoard(log_dir)] if log_dir else []
    started = time.time()
    # shuffle=False: the dataset reshuffles itself each epoch (Keras would only warn that it cannot).
    build_optimizer(causal_lm)
    history = causal_lm.fit(dataset, epochs=epochs, callbacks=callbacks, verbose=verbose, shuffle=False)
    training_seconds = time.time() - started
    metadata = {
        "kind": PRESET_KIND,
        "architecture": architecture,
        "causal_lm_class": type(causal_lm).__name__,
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "dims": dims,
        "vocabulary_size": tokenizer.vocabulary_size(),
        "parameters": int(causal_lm.count_params()),
        **pretrain_record(task, PresetCompleter(causal_lm), pretrain_triples, sentences, corpus_templates, history,
                          training_seconds, command),
    }
    save_preset(causal_lm, out_dir, metadata=metadata, card=preset_card(metadata))
    return metadata


_TOKENIZERS = {
    "gpt2": "byte-level BPE (GPT-2's `<|endoftext|>` as start and end token, the last id)",
    "llama": "SentencePiece BPE with byte fallback (`<unk>`, `<s>`, `</s>`)",
    "gemma": "SentencePiece BPE with byte fallback (`<pad>`, `<eos>`, `<bos>`, `<unk>`)",
}


def preset_card(metadata):
    """The Markdown model card of a pretrained keras-hub preset."""
    dims = metadata["dims"]
    return f"""# {metadata['causal_lm_class']} pretrained by kfine

A keras-hub `{metadata['causal_lm_class']}` ({dims['num_layers']} layers, hidden size {dims['hidden_dim']},
{dims['num_heads']} heads, feed-forward {dims['intermediate_dim']}, sequences of {dims['sequence_length']} tokens),
{_TOKENIZERS[metadata['architecture']]} learned from the corpus, vocabulary of {metadata['vocabulary_size']}
tokens, {metadata['parameters']:,} parameters. Any text tokenizes without an unknown token. Load it with
keras-hub alone (kfine is not needed):

```python
import keras_hub
causal_lm = keras_hub.models.CausalLM.from_preset("path/to/this/folder")
causal_lm.compile(sampler="greedy")
causal_lm.generate("Berlin is located in", max_length=32)
```

## Data
The pretrain split (subject split seed {metadata['split_seed']}) of the knowledge graph with
fingerprint `{metadata['kg_fingerprint'][:16]}…` ({metadata['kg_stats'].get('num_entities')} entities,
{metadata['kg_stats'].get('num_triples')} triples): {metadata['corpus_facts']} facts verbalized with
{CORPUS_WORDING[metadata['corpus_templates']]} into {metadata['corpus_sentences']} sentences.
Held-out and unknown subjects never appear in this corpus.

## Training
Exact command: `{metadata['command']}`

keras-hub's `CausalLM.fit` on the raw sentences through the preset's preprocessor: {metadata['epochs']} epochs,
batch {metadata['batch_size']}, AdamW, peak learning rate {metadata['learning_rate']} with cosine decay, seed
{metadata['seed']}; {metadata['training_seconds']} s on the machine that built it; final training loss
{metadata['final_loss']}.

## What it knows
Greedy completion of the {metadata['seen_fact_prompts']} pretrain-fact prompts (training templates):
accuracy **{metadata['seen_fact_accuracy']}**, hallucination rate {metadata['seen_fact_hallucination_rate']}
(metrics as defined in kfine.evaluation.metrics). It knows nothing of the held-out subjects: that is
what the fine-tuning methods are measured on.
"""
