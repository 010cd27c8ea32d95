"""KG-constrained decoding: the answer slot names only entities the KG allows, or abstains.

A `KnowledgeConstraint` reads each prompt the way the bench asks it: it
matches the prompt against the training templates (never the reserved
paraphrase ones) to find the relation and the subject, links the subject in
the model's KG, and allows at the answer slot:

- the KG's objects of `(subject, relation)`; when the KG has none (or the
  subject is not in the KG), only the abstention phrase;
- for a prompt no training template matches but that mentions an entity
  (the last mention is taken as the subject): the objects of any of that
  entity's facts, since the relation is unknown but the answer must still
  be something the KG says about the subject;
- otherwise: any entity name of the KG, or the abstention phrase.

So every answer is a KG entity (or the abstention phrase) on every split.

An `EntityNameTrie` turns the allowed entities into a logits mask inside
the keras-hub sampler loop: while a row is in its answer slot only tokens
that extend an allowed name are possible, a finished name may only be
followed by the end of the sentence (`.` or `[EOS]`; `[EOS]` alone after
the abstention phrase), and after that decoding is free. The trie is
stored flat, as a `(max_name_length + 1, num_names)` table of token ids;
a row's trie node is the set of allowed names its answer tokens so far
agree with (carried through the sampler's cache), so one step costs a
gather, a compare and a segment max over the names, with tensor ops only
(XLA-compatible).

`ConstrainedGenerator` wraps any method's generator with a
`KnowledgeConstraint`.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from kfine.errors import KfineError
from kfine.knowledge.graph import KnowledgeGraph
from kfine.knowledge.linker import EntityLinker
from kfine.knowledge.names import DEFAULT_ABSTENTION, normalize_name
from kfine.knowledge.templates import SUBJECT, Templates

# Tokens that may end the answer after a finished entity name.
_SENTENCE_END = "."
_LARGE_NEGATIVE = -1e9


class EntityNameTrie:
    """The tokenized names of a KG's entities (and the abstention phrase) as a logits mask.

    Names are every entity's name and aliases, tokenized on their own
    (the tokenizer splits on whitespace and punctuation, so a name has the
    same ids after a prompt). Names with a token the vocabulary lacks
    (`[UNK]`), and aliases another entity also uses, are left out: they
    could not be generated, or would be read as the other entity.

    Args:
        knowledge_graph: `KnowledgeGraph`. The model's KG.
        tokenizer: `WordPieceTokenizer`.
        abstention: str. The abstention phrase; it must tokenize without `[UNK]`.

    Example:

    >>> trie = EntityNameTrie(kg, tokenizer)
    >>> trie.names[:2]
    ['Afghanistan', 'Kabul']
    """

    def __init__(self, knowledge_graph, tokenizer, abstention=DEFAULT_ABSTENTION):
        owners = {}
        for entity in knowledge_graph.entities:
            for name in knowledge_graph.names(entity):
                owners.setdefault(normalize_name(name), set()).add(entity)
        names, entity_ids = [], []
        for entity_id, entity in enumerate(knowledge_graph.entities):
            for name in knowledge_graph.names(entity):
                if name == entity or owners[normalize_name(name)] == {entity}:
                    names.append(name)
                    entity_ids.append(entity_id)
        # Answers follow the prompt's last word, so names are spelled as there ("ĠParis").
        rows = tokenizer.encode_in_context(names + [abstention])
        if not rows[-1] or tokenizer.unk_id in rows[-1]:
            raise KfineError(f"the abstention phrase must be words the tokenizer knows. Received: {abstention!r}")
        keep = [index for index, row in enumerate(rows[:-1]) if row and tokenizer.unk_id not in row]
        self.names = [names[index] for index in keep] + [abstention]
        self.abstention = abstention
        self.num_entities = knowledge_graph.num_entities
        # Entity id of each name; the abstention phrase, last, has -1.
        self.name_entity_ids = np.array([entity_ids[index] for index in keep] + [-1], "int32")
        token_rows = [rows[index] for index in keep] + [rows[-1]]
        self.name_lengths = np.array([len(row) for row in token_rows], "int32")
        # One spare -1 column: past a name's end nothing matches.
        table = np.full((len(token_rows), int(self.name_lengths.max()) + 1), -1, "int32")
        for index, row in enumerate(token_rows):
            table[index, : len(row)] = row
        self._tokens_by_position = tf.constant(table.T)
        self._lengths = tf.constant(self.name_lengths)
        self._is_abstention = tf.constant(self.name_entity_ids < 0)
        self.vocabulary_size = tokenizer.vocabulary_size
        is_end = np.zeros(tokenizer.vocabulary_size, bool)
        is_end[tokenizer.eos_id] = True
        self._eos_only = tf.constant(is_end)
        if _SENTENCE_END in tokenizer.vocabulary:
            is_end[tokenizer.token_to_id(_SENTENCE_END)] = True
        self._sentence_end = tf.constant(is_end)

    @property
    def num_names(self):
        return len(self.names)

    def name_mask(self, allowed, max_new_tokens):
        """Per-row bool `(rows, num_names)`: names of allowed entities that fit in `max_new_tokens`.

        One token is kept for the end of the sentence. A row left with no
        name (its entities' names are all too long) gets the abstention phrase.
        """
        fits = self.name_lengths < max_new_tokens
        is_abstention = self.name_entity_ids < 0
        entity_allowed = allowed.entities[:, np.maximum(self.name_entity_ids, 0)] & ~is_abstention
        mask = (entity_allowed | (allowed.abstain[:, None] & is_abstention)) & fits
        mask[~mask.any(axis=1), -1] = True
        return mask

    def constrain(self, buffer, index, logits, prompt_lengths, alive):
        """Masks `logits` for the token at `index`; returns `(logits, alive)`.

        Args:
            buffer: int32 `(batch, length)`. Prompts and tokens generated so far.
            index: int32 scalar. The position being generated.
            logits: float `(batch, vocabulary)`.
            prompt_lengths: int32 `(batch,)`.
            alive: bool `(batch, num_names)`. Allowed names that agree with
                each row's answer tokens before `index - 1`.

        Returns:
            The masked logits, and `alive` updated with the token at `index - 1`.
        """
        generated = index - prompt_lengths  # answer tokens before `index`
        last_token = tf.gather(buffer, tf.maximum(index - 1, 0), axis=1)
        last_position = tf.clip_by_value(generated - 1, 0, tf.shape(self._tokens_by_position)[0] - 1)
        agrees = tf.gather(self._tokens_by_position, last_position) == last_token[:, None]
        alive = tf.where((generated > 0)[:, None], alive & agrees, alive)

        position = tf.clip_by_value(generated, 0, tf.shape(self._tokens_by_position)[0] - 1)
        next_tokens = tf.gather(self._tokens_by_position, position)  # (batch, names)
        extends = alive & (next_tokens >= 0)
        batch = tf.shape(logits)[0]
        segments = tf.range(batch)[:, None] * self.vocabulary_size + tf.maximum(next_tokens, 0)
        allowed = tf.math.unsorted_segment_max(
            tf.reshape(tf.cast(extends, tf.int32), [-1]),
            tf.reshape(segments, [-1]),
            num_segments=batch * self.vocabulary_size,
        )
        allowed = tf.reshape(allowed, (batch, self.vocabulary_size)) > 0
        finished = alive & (self._lengths[None, :] == generated[:, None])
        ends_entity = tf.reduce_any(finished & ~self._is_abstention[None, :], axis=1)
        ends_abstention = tf.reduce_any(finished & self._is_abstention[None, :], axis=1)
        allowed |= (ends_entity[:, None] & self._sentence_end[None, :]) | (
            ends_abstention[:, None] & self._eos_only[None, :]
        )
        # Still in the prompt, or past the answer slot: no constraint.
        free = (generated < 0) | ~tf.reduce_any(alive, axis=1)
        allowed |= free[:, None]
        return tf.where(allowed, logits, tf.cast(_LARGE_NEGATIVE, logits.dtype)), alive


@dataclasses.dataclass(frozen=True)
class AllowedAnswers:
    """What each prompt's answer slot may hold.

    Attributes:
        trie: `EntityNameTrie`. Turns the sets into a logits mask.
        entities: bool array `(prompts, num_entities)`. The allowed entities.
        abstain: bool array `(prompts,)`. Whether the abstention phrase is allowed.
    """

    trie: EntityNameTrie
    entities: np.ndarray
    abstain: np.ndarray

    def take(self, indices):
        """The answers of the prompts at `indices`."""
        indices = np.asarray(indices, "int64")
        return AllowedAnswers(self.trie, self.entities[indices], self.abstain[indices])

    def __len__(self):
        return len(self.abstain)


class KnowledgeConstraint:
    """Decides, from the model's KG, which answers each prompt may get.

    See the module docstring for the rules. Prompts are read with the
    training templates only: a method never sees the reserved paraphrase
    templates, so paraphrased questions fall to the subject-only rule.

    Args:
        knowledge_graph: `KnowledgeGraph`. The KG the model may use (for the
            bench, `task.model_graph`: the unknown split's facts are absent).
        templates: `Templates`. Their training templates are read.
        tokenizer: `WordPieceTokenizer` of the model.
        abstention: str. The abstention phrase (default `"unknown"`, the
            one `AnswerJudge` counts as abstaining).

    Example:

    >>> constraint = KnowledgeConstraint(kg, templates, tokenizer)
    >>> constraint.allowed_entities("The capital of France is")
    ({'Paris'}, False)
    """

    def __init__(self, knowledge_graph, templates, tokenizer, abstention=DEFAULT_ABSTENTION):
        if not isinstance(knowledge_graph, KnowledgeGraph):
            raise KfineError(f"`knowledge_graph` must be a KnowledgeGraph. Received: {type(knowledge_graph).__name__}")
        if not isinstance(templates, Templates):
            raise KfineError(f"`templates` must be Templates. Received: {type(templates).__name__}")
        if not isinstance(abstention, str) or not abstention.strip():
            raise KfineError(f"`abstention` must be a non-empty str. Received: abstention={abstention!r}")
        self.knowledge_graph = knowledge_graph
        self.abstention = abstention
        self.linker = EntityLinker(knowledge_graph)
        self.trie = EntityNameTrie(knowledge_graph, tokenizer, abstention)
        # (text before the subject, text after it, relation) of each training prompt.
        self._patterns = []
        for relation in templates.relations:
            if not knowledge_graph.has_relation(relation):
                continue
            for template in templates.training_templates(relation):
                head, tail = Templates.prompt(template, SUBJECT).split(SUBJECT)
                self._patterns.append((head, tail, relation))

    def _subject(self, text):
        """The entity `text` names entirely, or None."""
        mentions = self.linker.link(text)
        if len(mentions) == 1 and mentions[0].surface == text.strip():
            return mentions[0].entity
        return None

    def allowed_entities(self, prompt):
        """Returns `(entities, abstain)`: the entity names allowed after `prompt`, and
        whether the abstention phrase is; `entities` is None for "any entity"."""
        graph = self.knowledge_graph
        matches = []  # (specificity, relation, subject or None)
        for head, tail, relation in self._patterns:
            if len(prompt) > len(head) + len(tail) and prompt.startswith(head) and prompt.endswith(tail):
                subject_text = prompt[len(head) : len(prompt) - len(tail)]
                matches.append((len(head) + len(tail), relation, self._subject(subject_text)))
        linked = [match for match in matches if match[2] is not None]
        if linked or matches:
            # The most specific templates win; several relations may share a prompt.
            candidates = linked or matches
            best = max(specificity for specificity, _, _ in candidates)
            objects = set()
            for specificity, relation, subject in candidates:
                if specificity == best and subject is not None:
                    objects |= graph.objects(subject, relation)
            return (objects, False) if objects else (set(), True)
        mentions = self.linker.link(prompt)
        if mentions:
            subject = mentions[-1].entity
            objects = {obj for relation, obj in graph.neighbors(subject) if not relation.startswith("^")}
            if objects:
                return objects, False
        return None, True

    def answers(self, prompts):
        """Returns the `AllowedAnswers` of a list of prompts."""
        entities = np.zeros((len(prompts), self.trie.num_entities), bool)
        abstain = np.zeros(len(prompts), bool)
        for row, prompt in enumerate(prompts):
            allowed, abstain[row] = self.allowed_entities(prompt)
            if allowed is None:
                entities[row] = True
            else:
                entities[row, [self.knowledge_graph.entity_id(entity) for entity in allowed]] = True
        return AllowedAnswers(self.trie, entities, abstain)


class ConstrainedGenerator:
    """Wraps a generator so that its answers obey a `KnowledgeConstraint`.

    Works with any generator whose `generate_ids` takes `allowed=`
    (`kfine.models.generation.Generator` and its subclasses, such as the
    `knowledge` method's `KnowledgeGenerator`).

    Args:
        generator: the generator to constrain.
        constraint: `KnowledgeConstraint` built with the generator's tokenizer.

    Example:

    >>> constrained = ConstrainedGenerator(generator, KnowledgeConstraint(kg, templates, tokenizer))
    >>> constrained.generate(["The capital of Atlantis is"])
    ['unknown']
    """

    def __init__(self, generator, constraint):
        if constraint.trie.vocabulary_size != generator.tokenizer.vocabulary_size:
            raise KfineError("the constraint was built with another tokenizer than the generator's")
        self.generator = generator
        self.constraint = constraint

    @property
    def model(self):
        return self.generator.model

    @property
    def tokenizer(self):
        return self.generator.tokenizer

    def generate_ids(self, prompts, max_new_tokens=16):
        prompts = list(prompts)
        return self.generator.generate_ids(prompts, max_new_tokens, allowed=self.constraint.answers(prompts))

    def generate_with_confidence(self, prompts, max_new_tokens=16):
        """`(texts, confidences)` of the constrained completions, scored as the wrapped generator scores."""
        prompts = list(prompts)
        return self.generator.generate_with_confidence(prompts, max_new_tokens,
                                                       allowed=self.constraint.answers(prompts))

    def generate(self, prompts, max_new_tokens=16):
        """Returns the completion text of each prompt, its answer constrained by the KG."""
        return self.tokenizer.decode_batch(self.generate_ids(prompts, max_new_tokens))


def constrained(generator, knowledge_graph, templates, abstention=DEFAULT_ABSTENTION):
    """Returns `generator` wrapped in KG-constrained decoding over `knowledge_graph`.

    Example:

    >>> constrained(generator, task.model_graph, task.templates).generate(["The capital of France is"])
    ['Paris .']
    """
    constraint = KnowledgeConstraint(knowledge_graph, templates, generator.tokenizer, abstention)
    return ConstrainedGenerator(generator, constraint)
