"""A callback that measures the generator's hallucination on probe prompts after each epoch."""

import json
import os

import keras
import numpy as np

from kfine.evaluation.metrics import HALLUCINATED, AnswerJudge


class ProbeHallucination(keras.callbacks.Callback):
    """Adds `probe_hallucination` (greedy answers judged against the KG) to each epoch's logs.

    It runs before the TensorBoard callback, so the value is written there
    with the epoch's other scalars, and it lands in the `History` too. The
    value before training (`initial`) and every epoch's logs of `keys` are
    saved as JSON at `history_path` when training ends.

    Args:
        generator: an object with `generate(prompts, max_new_tokens)` over the model being trained.
        prompts_with_gold: list of `(Prompt, gold_objects)`: the probe questions.
        knowledge_graph: `KnowledgeGraph` whose names define the entities.
        history_path: str or None. Where to save the per-epoch JSON.
        keys: tuple of str. Epoch logs to save beside `probe_hallucination`.
        max_new_tokens: int. Completion budget.
    """

    def __init__(self, generator, prompts_with_gold, knowledge_graph, history_path=None, keys=(), max_new_tokens=8):
        super().__init__()
        if not prompts_with_gold:
            raise ValueError("`prompts_with_gold` must hold at least one question. Received: none")
        self.generator = generator
        self.prompts_with_gold = list(prompts_with_gold)
        self.judge = AnswerJudge(knowledge_graph)
        self.history_path = history_path
        self.keys = tuple(keys)
        self.max_new_tokens = max_new_tokens
        self.initial = None
        self.epochs = []

    def hallucination(self):
        """The share of probe questions the generator answers with anything but a gold object or abstention."""
        completions = self.generator.generate([prompt.text for prompt, _ in self.prompts_with_gold],
                                              self.max_new_tokens)
        verdicts = [self.judge.judge(prompt.text, completion, prompt.suffix, gold).verdict
                    for (prompt, gold), completion in zip(self.prompts_with_gold, completions)]
        return float(np.mean([verdict == HALLUCINATED for verdict in verdicts]))

    def on_train_begin(self, logs=None):
        self.initial = self.hallucination()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        logs["probe_hallucination"] = self.hallucination()
        self.epochs.append({key: float(logs[key]) for key in (*self.keys, "probe_hallucination") if key in logs})

    def on_train_end(self, logs=None):
        if self.history_path:
            os.makedirs(os.path.dirname(self.history_path) or ".", exist_ok=True)
            with open(self.history_path, "w", encoding="utf-8") as stream:
                json.dump({"probe_hallucination_before": self.initial, "epochs": self.epochs}, stream, indent=2)
