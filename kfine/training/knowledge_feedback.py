"""`knowledge+factcheck`: the `knowledge` method, then fact-check feedback that teaches it to abstain.

The `knowledge` model copies a fact of the linked subject; when its KG has no
fact for the subject and relation asked (the unknown split) it still copies
one, of another relation. Here the fact pointer gets a learned "no fact"
column (`KnowledgeLanguageModel(abstains=True)`) and feedback rounds teach
when to use it, with no decoding rule:

- the probe slice (`kfine.training.probe`: finetune-split subjects kept out
  of training text) is split in two; two thirds of its subjects have their
  facts removed from the KG the model reads, so asking about them is asking what
  the KG does not hold, as the unknown split does (the KG the model keeps is
  `task.model_graph` less those facts: less than a method may use, never more);
- each round the model answers the probe prompts and the `KnowledgeGraphChecker`
  over the KG the model reads judges the answers: supported -> the answer
  is kept as a positive, its fact as the pointer's target; refuted, or a
  claim that KG has no fact for (any answer about a removed subject, even a
  lucky guess: nothing the model reads grounds it) -> the target becomes
  the abstention phrase with the pointer's "no fact" class; an abstention
  keeps the prompt's previous target;
- the model trains on those targets together with the finetune examples.
  The LM head reads the pointer's "no fact" probability (see
  `KnowledgeLanguageModel`), so it can learn "nothing in the KG to copy ->
  abstain", which holds for subjects it never saw, not only the probe's.

Per round, TensorBoard `feedback/` gets the counts of supported, refuted
and ungrounded answers and of each kind of target.
"""

import functools
import os

import keras
import numpy as np
import tensorflow as tf

from kfine.factcheck.knowledge_graph_checker import KnowledgeGraphChecker
from kfine.factcheck.verdict import NOT_IN_KG, REFUTED, SUPPORTED
from kfine.knowledge.names import DEFAULT_ABSTENTION, normalize_name
from kfine.models.optimizer import build_optimizer
from kfine.training.knowledge import build_knowledge_model, example_arrays, knowledge_examples, train_knowledge_model
from kfine.training.mle import next_token_loss
from kfine.training.probe import ProbeSlice

QUICK_ROUNDS = 3
FULL_ROUNDS = 4
EPOCHS_PER_ROUND = 2
# A small KG still gets this many updates a round (more epochs), or a few abstention rows never register.
MIN_STEPS_PER_ROUND = 100
BATCH_SIZE = 32
# Fact-target value the pointer loss ignores (0 is the "no fact" class here).
_NO_TARGET = -1


def fine_tune_knowledge_factcheck(task, pretrained, seed, log_dir, quick=False, verbose=0, init_embeddings=None):
    """`knowledge`, then probe feedback rounds that teach the pointer to decline (see the module docs)."""
    probe = ProbeSlice(task)
    subjects = probe.subjects
    hidden_subjects = {subjects[index] for index in np.random.default_rng([task.split_seed, 5]).permutation(
        len(subjects))[: len(subjects) - len(subjects) // 3]}
    hidden = [triple for triple in task.splits.triples("finetune") if triple[0] in hidden_subjects]
    generator = train_knowledge_model(
        task, pretrained, seed, log_dir, quick=quick, verbose=verbose, init_embeddings=init_embeddings,
        make_model=functools.partial(build_knowledge_model, abstains=True), graph=task.model_graph.without(hidden))
    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    AbstentionRounds(generator, probe, log_dir, verbose=verbose).fit(task, rounds)
    return generator


class AbstentionRounds:
    """Answer the probe, check, train: the feedback rounds of `knowledge+factcheck`.

    Args:
        generator: `KnowledgeGenerator` over a `KnowledgeLanguageModel(abstains=True)`.
        probe: `ProbeSlice`.
        log_dir: str or None. TensorBoard directory (`feedback/` per round).
        abstention: str. The abstention phrase.
        verbose: Keras verbosity.
    """

    def __init__(self, generator, probe, log_dir=None, abstention=DEFAULT_ABSTENTION, verbose=0):
        self.generator = generator
        self.model = generator.model
        self.probe = probe
        # The model's own KG is the reference: what it does not hold, the model cannot know.
        self.checker = KnowledgeGraphChecker(generator.linker.knowledge_graph, probe.templates, abstention)
        self.log_dir = log_dir
        self.abstention = abstention
        self.verbose = verbose

    def fit(self, task, rounds):
        """Runs `rounds` rounds; returns one dict of counts per round."""
        model, linker = self.model, self.generator.linker
        fact_tables = (model.injection.fact_relations.numpy(), model.injection.fact_objects.numpy())
        finetune = knowledge_examples(task, linker, model.tokenizer, fact_tables)
        # Here 0 is the "no fact" class: only the prompt's last token has a pointer target.
        finetune["fact_targets"] = np.where(finetune["fact_targets"] > 0, finetune["fact_targets"], _NO_TARGET)
        model.compile(
            optimizer=keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.01),
            loss={"logits": next_token_loss(),
                  "fact_scores": keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=_NO_TARGET)},
        )
        questions = self.probe.prompts()
        prompts = list(questions)
        writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "feedback")) if self.log_dir else None
        targets, history = {}, []
        for round_index in range(rounds):
            texts = self.generator.generate(prompts)
            verdicts = self.checker.check([f"{prompt} {text}" for prompt, text in zip(prompts, texts)])
            abstained = [normalize_name(text).strip(" .") == normalize_name(self.abstention) for text in texts]
            for prompt, text, verdict, abstains in zip(prompts, texts, verdicts, abstained):
                if verdict.label == SUPPORTED:
                    subject, relation = questions[prompt]
                    targets[prompt] = (f"{prompt} {text}", self._slot(fact_tables, subject, relation, verdict.entity))
                elif not abstains:
                    targets[prompt] = (f"{prompt} {self.abstention}", 0)
            arrays = _concatenated(finetune, self._arrays(targets, linker)) if targets else finetune
            inputs = {"token_ids": arrays["token_ids"], "entity_ids": arrays["entity_ids"]}
            steps = -(-len(arrays["token_ids"]) // BATCH_SIZE)
            build_optimizer(model)
            model.fit(inputs, {"logits": arrays["targets"], "fact_scores": arrays["fact_targets"]},
                      batch_size=BATCH_SIZE, epochs=max(EPOCHS_PER_ROUND, -(-MIN_STEPS_PER_ROUND // steps)),
                      shuffle=True, verbose=self.verbose)
            stats = {
                "probe_supported": sum(v.label == SUPPORTED for v in verdicts),
                "probe_refuted": sum(v.label == REFUTED for v in verdicts),
                "probe_ungrounded": sum(v.label == NOT_IN_KG and not a for v, a in zip(verdicts, abstained)),
                "probe_abstained": sum(abstained),
                "probe_abstention_targets": sum(slot == 0 for _, slot in targets.values()),
                "probe_positive_targets": sum(slot != 0 for _, slot in targets.values()),
            }
            history.append(stats)
            if writer is not None:
                with writer.as_default():
                    for name, value in stats.items():
                        tf.summary.scalar(f"feedback/{name}", value, step=round_index)
                writer.flush()
        if writer is not None:
            writer.close()
        return history

    def _slot(self, fact_tables, subject, relation, entity):
        """1 + the fact slot of `(subject, relation, entity)` in the model's KG; `_NO_TARGET` if it has none."""
        graph = self.generator.linker.knowledge_graph
        if entity is None or not graph.has_entity(subject) or not graph.has_entity(entity):
            return _NO_TARGET
        relations, objects = fact_tables
        row = graph.entity_id(subject) + 1
        match = (relations[row] == graph.relation_id(relation)) & (objects[row] == graph.entity_id(entity) + 1)
        return int(np.argmax(match)) + 1 if match.any() else _NO_TARGET

    def _arrays(self, targets, linker):
        prompts = list(targets)
        arrays = example_arrays(linker, self.model.tokenizer, [targets[p][0] for p in prompts], prompts,
                                [targets[p][1] for p in prompts])
        # The pointer's target sits at each prompt's last token, "no fact" (0) included; elsewhere none.
        prompt_ends = [len(row) - 1 for row in self.model.tokenizer.encode_batch(prompts)]
        fact_targets = np.full_like(arrays["fact_targets"], _NO_TARGET)
        for index, end in enumerate(prompt_ends):
            fact_targets[index, end] = targets[prompts[index]][1]
        arrays["fact_targets"] = fact_targets
        return arrays


def _concatenated(first, second):
    """Row-concatenation of two example dicts, right-padded to one length (fact targets with `_NO_TARGET`)."""
    length = max(first["token_ids"].shape[1], second["token_ids"].shape[1])
    merged = {}
    for name in first:
        fill = _NO_TARGET if name == "fact_targets" else 0
        parts = [np.pad(arrays[name], ((0, 0), (0, length - arrays[name].shape[1])), constant_values=fill)
                 for arrays in (first, second)]
        merged[name] = np.concatenate(parts)
    return merged
