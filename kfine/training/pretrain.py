"""Pretraining kfine's causal LM on the pretrain split of a verbalized KG."""

import time

import keras

from kfine.evaluation.evaluate import judge_prompts
from kfine.evaluation.metrics import rates
from kfine.models.causal_lm import build_causal_lm
from kfine.models.generation import Generator
from kfine.models.loading import save_model
from kfine.models.tokenizer import WordPieceTokenizer
from kfine.training.mle import train_mle

# Every n-th pretrain prompt is asked for the model card's seen-fact accuracy.
SEEN_FACT_STRIDE = 5
# Which templates verbalize the pretraining corpus (see `pretrain`).
CORPUS_TEMPLATES = ("all", "training")
ARCHITECTURE = {"num_layers": 2, "hidden_dim": 128, "num_heads": 4, "intermediate_dim": 512, "sequence_length": 64}


def pretrain_corpus(task, corpus_templates="all"):
    """`(pretrain_triples, sentences)`: the pretrain split of `task` and its verbalization.

    `corpus_templates` is `"all"` (every template) or `"training"` (the
    reserved paraphrase templates left out; see `pretrain`).
    """
    if corpus_templates not in CORPUS_TEMPLATES:
        raise ValueError(
            f"`corpus_templates` must be one of {CORPUS_TEMPLATES}. Received: corpus_templates={corpus_templates!r}"
        )
    pretrain_triples = task.splits.training_triples("pretrain")
    return pretrain_triples, task.verbalizer.sentences(pretrain_triples, which=corpus_templates)


def pretrain_record(task, generator, pretrain_triples, sentences, corpus_templates, history, training_seconds,
                    command):
    """What every pretrained model's `training.json` records of its KG, corpus, run and seen facts.

    The seen-fact accuracy is that of `generator`'s greedy completions (see
    `judge_prompts`) of every `SEEN_FACT_STRIDE`-th pretrain prompt.
    """
    graph = task.knowledge_graph
    prompts = [(prompt, graph.objects(prompt.subject, prompt.relation))
               for prompt in task.verbalizer.prompts(pretrain_triples)][::SEEN_FACT_STRIDE]
    seen = rates(judge_prompts(generator, graph, prompts))
    return {
        "kg_fingerprint": graph.fingerprint(),
        "kg_stats": {key: value for key, value in graph.stats().items() if isinstance(value, (int, float))},
        "split_seed": task.split_seed,
        "corpus_sentences": len(sentences),
        "corpus_facts": len(pretrain_triples),
        "corpus_templates": corpus_templates,
        "training_seconds": round(training_seconds, 1),
        "final_loss": round(float(history.history["loss"][-1]), 4),
        "seen_fact_prompts": len(prompts),
        "seen_fact_accuracy": round(seen["accuracy"], 4),
        "seen_fact_hallucination_rate": round(seen["hallucination_rate"], 4),
        "command": command,
    }


def pretrain(task, out_dir, seed=0, epochs=40, batch_size=64, learning_rate=2e-3, vocabulary_size=2000,
             log_dir=None, command=None, verbose=1, architecture=None, corpus_templates="all"):
    """Learns a tokenizer and trains a fresh LM on `task`'s pretrain split.

    The tokenizer is learned from the pretrain sentences and covers every
    character of every KG name and alias. Held-out and unknown subjects never
    appear in the corpus (see `Splits`).

    By default the corpus uses every template, the reserved paraphrase ones
    included: a pretrained LM knows the wordings of its language, and the
    paraphrase split asks whether fine-tuning on a few wordings carries new
    facts over to another wording the LM knows. Fine-tuning methods never see
    the paraphrase templates. `corpus_templates="training"` leaves them out
    too, so the paraphrase wording is new to the LM itself.

    Args:
        task: `FactTask`. Supplies the KG, templates and subject split.
        out_dir: str. Model directory, written atomically at the end.
        seed: int. Seeds initialization, shuffling and dropout.
        epochs: int. Passes over the corpus.
        batch_size: int.
        learning_rate: float. Peak learning rate.
        vocabulary_size: int. Learned WordPiece vocabulary size (before coverage).
        log_dir: str or None. TensorBoard log directory.
        command: str. The command line, recorded in the model card.
        verbose: Keras verbosity.
        architecture: dict overriding `ARCHITECTURE` (tests use tiny ones).
        corpus_templates: str. `"all"` or `"training"` (see above).

    Returns:
        The metadata dict written to `training.json`.
    """
    pretrain_triples, sentences = pretrain_corpus(task, corpus_templates)
    keras.utils.set_random_seed(seed)
    graph = task.knowledge_graph
    names = [name for entity in graph.entities for name in graph.names(entity)]
    tokenizer = WordPieceTokenizer.learn(sentences, vocabulary_size=vocabulary_size, coverage_texts=names)
    architecture = {**ARCHITECTURE, **(architecture or {})}
    model = build_causal_lm(tokenizer.vocabulary, **architecture)
    callbacks = [keras.callbacks.TensorBoard(log_dir)] if log_dir else []
    started = time.time()
    history = train_mle(model, sentences, epochs=epochs, batch_size=batch_size,
                        learning_rate=learning_rate, seed=seed, callbacks=callbacks, verbose=verbose)
    training_seconds = time.time() - started
    metadata = {
        "kind": "kfine-causal-lm",
        "seed": seed,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "architecture": architecture,
        "vocabulary_size": tokenizer.vocabulary_size,
        "parameters": int(model.count_params()),
        **pretrain_record(task, Generator(model, tokenizer), pretrain_triples, sentences, corpus_templates, history,
                          training_seconds, command),
    }
    save_model(model, out_dir, metadata=metadata, card=model_card(metadata))
    return metadata


CORPUS_WORDING = {
    "all": "every template (the reserved paraphrase ones too: the LM knows that wording, no fine-tuning method "
           "sees it)",
    "training": "the training templates only (the paraphrase wording is new to the LM)",
}


def model_card(metadata):
    """The Markdown model card of a pretrained model."""
    architecture = metadata["architecture"]
    return f"""# kfine causal LM (pretrained)

A decoder-only transformer ({architecture['num_layers']} `TransformerDecoder` blocks from keras-hub,
hidden size {architecture['hidden_dim']}, {architecture['num_heads']} heads, feed-forward
{architecture['intermediate_dim']}, up to {architecture['sequence_length']} tokens), WordPiece vocabulary of
{metadata['vocabulary_size']} tokens, {metadata['parameters']:,} parameters. Load it with

```python
import keras, kfine
model = keras.models.load_model("model.keras")  # a kfine CausalLanguageModel (keras.Sequential)
```

## Data
The pretrain split (subject split seed {metadata['split_seed']}) of the knowledge graph with
fingerprint `{metadata['kg_fingerprint'][:16]}…` ({metadata['kg_stats'].get('num_entities')} entities,
{metadata['kg_stats'].get('num_triples')} triples): {metadata['corpus_facts']} facts verbalized with
{CORPUS_WORDING[metadata.get('corpus_templates', 'training')]} into {metadata['corpus_sentences']} sentences.
Held-out and unknown subjects never appear in this corpus.

## Training
Exact command: `{metadata['command']}`

{metadata['epochs']} epochs, batch {metadata['batch_size']}, AdamW, peak learning rate
{metadata['learning_rate']} with cosine decay, seed {metadata['seed']}; {metadata['training_seconds']} s on
the machine that built it; final training loss {metadata['final_loss']}.

## What it knows
Greedy completion of the {metadata['seen_fact_prompts']} pretrain-fact prompts (training templates):
accuracy **{metadata['seen_fact_accuracy']}**, hallucination rate {metadata['seen_fact_hallucination_rate']}
(metrics as defined in kfine.evaluation.metrics). It knows nothing of the held-out subjects: that is
what the fine-tuning methods are measured on.
"""
