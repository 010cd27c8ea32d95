"""`EntityLinker`: finds knowledge-graph entities in text and in token ids.

Three paths share one definition of a mention (a surface form of an entity,
chosen leftmost-longest, non-overlapping):

- text: character spans, with pyahocorasick (`linker_text`), for evaluation
  and data preparation;
- token ids: spans of a tokenized sentence, eager Python (`linker_tokens`);
- in-graph: per-token entity ids computed with TensorFlow ops only, for
  `tf.data` pipelines and `tf.function`s (`linker_graph`).

TensorFlow is imported only by the token paths, so `kfine.knowledge` still
loads without it.
"""

import collections.abc
import functools
import typing

from kfine.errors import KfineError
from kfine.knowledge.graph import KnowledgeGraph
from kfine.knowledge.linker_text import TextMatcher
from kfine.knowledge.linker_tokens import build_trie, id_list, leftmost_longest, short_repr, token_forms

NO_ENTITY = 0
"""Per-token id of a token outside any mention; entity `i` is stored as `i + 1`."""


class Mention(typing.NamedTuple):
    """A mention of an entity in a text.

    An immutable named tuple: `link` builds thousands a call, and a tuple
    can be made without running Python code per mention (a frozen
    dataclass cost a third of `link`'s time).

    Attributes:
        start: int. Character offset of the first character.
        end: int. Character offset just past the last character.
        entity: str. The entity's name in the knowledge graph.
        entity_id: int. The entity's id in the knowledge graph.
        surface: str. `text[start:end]`, the words as written.
    """

    start: int
    end: int
    entity: str
    entity_id: int
    surface: str


class TokenMention(typing.NamedTuple):
    """A mention of an entity in a sequence of token ids (an immutable named tuple, as `Mention`).

    Attributes:
        start: int. Index of the first token.
        end: int. Index just past the last token.
        entity: str. The entity's name in the knowledge graph.
        entity_id: int. The entity's id in the knowledge graph.
    """

    start: int
    end: int
    entity: str
    entity_id: int


# `Mention(*fields)` without the Python-level `__new__` of named tuples.
_new_mention = functools.partial(tuple.__new__, Mention)


class Mentions(collections.abc.Sequence):
    """The mentions `EntityLinker.link` found in a text: a read-only sequence of `Mention`.

    The spans are kept as arrays and the `Mention` objects are made, all at
    once, when the sequence is first read: a long text has thousands of
    mentions, making them costs about half of `link`'s matching, and a
    caller that only counts them or reads `entity_ids` needs none. Equal to
    a list or tuple of the same mentions.

    Attributes:
        text: str. The linked text.
        starts: int64 array. `Mention.start` of each mention.
        ends: int64 array. `Mention.end` of each mention.
        entity_ids: int64 array. `Mention.entity_id` of each mention.
    """

    __slots__ = ("text", "starts", "ends", "entity_ids", "_entities", "_mentions")

    def __init__(self, text, starts, ends, entity_ids, entities):
        self.text = text
        self.starts, self.ends, self.entity_ids = starts, ends, entity_ids
        self._entities = entities
        self._mentions = None

    def _made(self):
        if self._mentions is None:
            # Column by column with `map`, so that the loops run in C.
            starts, ends, entity_ids = self.starts.tolist(), self.ends.tolist(), self.entity_ids.tolist()
            surfaces = map(self.text.__getitem__, map(slice, starts, ends))
            entities = map(self._entities.__getitem__, entity_ids)
            self._mentions = list(map(_new_mention, zip(starts, ends, entities, entity_ids, surfaces)))
        return self._mentions

    def __len__(self):
        return len(self.starts)

    def __getitem__(self, index):
        return self._made()[index]

    def __iter__(self):
        return iter(self._made())

    def __eq__(self, other):
        if isinstance(other, Mentions):
            other = other._made()
        if isinstance(other, (list, tuple)):
            return self._made() == list(other)
        return NotImplemented

    __hash__ = None

    def __repr__(self):
        return repr(self._made())


class EntityLinker:
    """Finds mentions of knowledge-graph entities: names and aliases.

    Every entity name and every alias is a surface form of its entity. A
    mention is a surface form found in a text; mentions are chosen
    leftmost-longest and never overlap: at the first position where some
    surface form starts, the longest one is taken, and the search goes on
    after it. So "Andorra la Vella" is one mention of the capital, not
    "Andorra" followed by two words.

    **Text** (`link`). Text is split into words (runs of letters, digits
    and combining marks) and punctuation characters (`_` included, as in
    `normalize_name` and the tokenizer), and surface
    forms match whole sequences of these: a mention never starts or ends
    inside a word ("Parisian" does not mention "Paris"), and whitespace
    between words, or next to punctuation, may differ ("Guinea - Bissau"
    mentions "Guinea-Bissau"), as in `normalize_name`. Words compare after
    NFC normalization, and after case folding when `case_sensitive=False`.
    Each word of a surface form stands for one character, so a text costs
    one regex split, one dict lookup per word and one pyahocorasick scan,
    whatever the number of aliases.

    **Token ids** (`link_token_ids`, `entity_ids_per_token`,
    `entity_ids_tensor`, `link_texts_tensor`; they need `tokenizer`).
    Surface forms are matched as sequences of token ids, spelled as the
    tokenizer spells them in context: alone (a sentence's start, after
    punctuation, glued to it) and after a space (`encode_in_context`: GPT-2's
    "ĠParis", SentencePiece's "▁Paris"; the same ids for WordPiece, which
    splits on whitespace first). So the token paths find the same mentions
    as `link` whenever mentions are delimited by whitespace or punctuation.
    A mention ends where a word does: the next token does not continue a
    word (`word_continuation_ids`: "##ian", or "ian" after "ĠParis").
    Token ids carry case, so with `case_sensitive=False` they match each
    surface form as written, lowercased, uppercased, title-cased and with a
    capital first letter. Surface forms with characters the tokenizer does
    not know (`[UNK]`) are left out of the token paths, since `[UNK]` would
    match any unknown word.

    When two entities share a surface form (after case folding, or once
    whitespace is ignored), an entity's own name wins over another's alias,
    and otherwise the smaller entity id wins.

    Args:
        knowledge_graph: `KnowledgeGraph`. Its entities, with their aliases,
            are what is linked.
        tokenizer: `WordPieceTokenizer`, `PresetTokenizer` or None. Needed
            by the token paths.
        case_sensitive: bool. Whether "paris" mentions "Paris".

    Raises:
        KfineError: an argument has the wrong type, or (practically never)
            no collision-free hash of the tokenized surface forms was found.

    Example:

    >>> kg = KnowledgeGraph(
    ...     [("Andorra", "capital", "Andorra la Vella")],
    ...     aliases=[("Andorra", "Principality of Andorra")],
    ... )
    >>> linker = EntityLinker(kg)
    >>> [(m.surface, m.entity) for m in linker.link("Andorra la Vella is in Andorra.")]
    [('Andorra la Vella', 'Andorra la Vella'), ('Andorra', 'Andorra')]
    >>> linker.link("the principality of andorra")
    []
    >>> EntityLinker(kg, case_sensitive=False).link("the principality of andorra")[0].entity
    'Andorra'
    """

    def __init__(self, knowledge_graph, tokenizer=None, case_sensitive=True):
        if not isinstance(knowledge_graph, KnowledgeGraph):
            raise KfineError(
                "`knowledge_graph` must be a KnowledgeGraph. "
                f"Received: knowledge_graph={short_repr(knowledge_graph)}"
            )
        if not isinstance(case_sensitive, bool):
            raise KfineError(f"`case_sensitive` must be a bool. Received: case_sensitive={short_repr(case_sensitive)}")
        if tokenizer is not None and not all(
            hasattr(tokenizer, name)
            for name in ("tokenize", "encode_batch", "encode_in_context", "word_continuation_ids", "vocabulary",
                         "unk_id")
        ):
            raise KfineError(
                "`tokenizer` must be a WordPieceTokenizer, a PresetTokenizer or None. "
                f"Received: tokenizer={short_repr(tokenizer)}"
            )
        self.knowledge_graph = knowledge_graph
        self.tokenizer = tokenizer
        self.case_sensitive = case_sensitive
        self._entities = knowledge_graph.entities
        # Names before aliases, each in entity-id order: the first form to
        # claim a key keeps it (see the class docstring).
        self._surface_forms = [(name, entity_id) for entity_id, name in enumerate(self._entities)] + [
            (alias, knowledge_graph.entity_id(entity)) for entity, alias in knowledge_graph.alias_pairs
        ]
        self._text_matcher = TextMatcher(self._surface_forms, case_sensitive)
        self._token_trie = None
        self._token_matcher = None
        self._word_continuations = frozenset()
        if tokenizer is not None:
            forms = token_forms(tokenizer, self._surface_forms, case_sensitive)
            self._token_trie = build_trie(forms.items())
            # A mention must not end inside a word: the next token may not
            # continue it ("ĠParis" + "ian", "Paris" + "##ian" are no mention).
            self._word_continuations = tokenizer.word_continuation_ids()
            from kfine.knowledge.linker_graph import HashedPrefixMatcher  # imports TensorFlow

            self._token_matcher = HashedPrefixMatcher(
                self._token_trie, max(map(len, forms), default=1), self._word_continuations, len(tokenizer.vocabulary)
            )

    # === Text ===

    def link(self, text):
        """Returns the mentions of entities in `text`.

        Args:
            text: str.

        Returns:
            `Mentions`: a sequence of `Mention`, in text order,
            non-overlapping (equal to the list of them).

        Raises:
            KfineError: `text` is not a str.
        """
        if not isinstance(text, str):
            raise KfineError(f"`text` must be a str. Received: text={short_repr(text)}")
        return Mentions(text, *self._text_matcher.spans(text), self._entities)

    # === Token ids, eager ===

    def link_token_ids(self, token_ids):
        """Returns the mentions of entities in a sequence of token ids.

        Args:
            token_ids: list of int (e.g. from `tokenizer.encode`), or a 1-D
                integer numpy array or tensor.

        Returns:
            A list of `TokenMention`, in order, non-overlapping.

        Raises:
            KfineError: the linker has no tokenizer, or `token_ids` is not a
                1-D sequence of ints.
        """
        self._require_tokenizer("link_token_ids")
        matches = leftmost_longest(id_list(token_ids), self._token_trie, self._word_continuations)
        return [TokenMention(start, end, self._entities[entity_id], entity_id) for start, end, entity_id in matches]

    def entity_ids_per_token(self, token_ids):
        """Returns, for each token, the id of the entity it mentions so far, shifted by one.

        Causal: the id at position `t` is computed from tokens `0..t` only,
        as the mention that covers `t` when the tokens up to `t` are linked
        on their own. A language model reading it at `t` learns nothing of
        the tokens after `t`: "Europe" in "Europe/Paris" is the continent at
        its own position (linking the whole text would give the time zone,
        revealing "/Paris"), and the time zone from "Paris" on. A token
        inside such a mention of entity `i` gets `i + 1`; any other token
        gets `NO_ENTITY` (0). The shift lets 0 mean "no entity" and padding
        at once, so the result can index a `keras.layers.Embedding` of
        `num_entities + 1` rows whose row 0 stands for no entity (or be used
        with `mask_zero=True`). `link_token_ids` gives the mentions of the
        whole sequence.

        Args:
            token_ids: list of int, or a 1-D integer numpy array or tensor.

        Returns:
            A list of int, as long as `token_ids`.

        Raises:
            KfineError: the linker has no tokenizer, or `token_ids` is not a
                1-D sequence of ints.

        Example:

        >>> ids = tokenizer.encode("Paris is in France.")  # [BOS] Paris is in France .
        >>> linker.entity_ids_per_token(ids)  # with "France" = 0, "Paris" = 1
        [0, 2, 0, 0, 1, 0]
        """
        self._require_tokenizer("entity_ids_per_token")
        token_ids = id_list(token_ids)
        per_token = [NO_ENTITY] * len(token_ids)
        for position in range(len(token_ids)):
            # Only the prefix's last mention can cover its last token.
            matches = leftmost_longest(token_ids[: position + 1], self._token_trie, self._word_continuations)
            if matches and matches[-1][1] == position + 1:
                per_token[position] = matches[-1][2] + 1
        return per_token

    # === Token ids, in-graph ===

    def entity_ids_tensor(self, token_ids):
        """Computes `entity_ids_per_token` with TensorFlow ops, for batches and graphs.

        Works eagerly, inside a `tf.function` and inside
        `tf.data.Dataset.map`. Padding must use an id that no surface form
        contains (`[PAD]` = 0 is never one), so padded positions get
        `NO_ENTITY`. Causal as `entity_ids_per_token`: every prefix of a row
        is linked on its own (a `(seq, seq)` block a row, which is cheap at
        the lengths of fact sentences).

        Args:
            token_ids: integer `tf.Tensor` of shape `(seq,)` or
                `(batch, seq)`, or a `tf.RaggedTensor` of shape
                `(batch, None)`.

        Returns:
            An int32 tensor of the same shape (ragged, with the same row
            lengths, for a ragged input): `entity_id + 1` for tokens inside a
            mention, `NO_ENTITY` elsewhere.

        Raises:
            KfineError: the linker has no tokenizer, or `token_ids` has an
                unsupported rank or type.
        """
        import tensorflow as tf  # Imported here so that kfine.knowledge loads without TensorFlow.

        self._require_tokenizer("entity_ids_tensor")
        if isinstance(token_ids, tf.RaggedTensor):
            if token_ids.ragged_rank != 1 or token_ids.shape.rank != 2:
                raise KfineError(
                    "`token_ids` must be a RaggedTensor of shape (batch, None). "
                    f"Received: shape={token_ids.shape}, ragged_rank={token_ids.ragged_rank}"
                )
            token_ids = tf.cast(token_ids, tf.int64).with_row_splits_dtype(tf.int64)
            lengths = token_ids.row_lengths()
            return tf.RaggedTensor.from_tensor(self._causal_ids(token_ids.to_tensor(), lengths), lengths=lengths)
        try:
            token_ids = tf.convert_to_tensor(token_ids)
        except (TypeError, ValueError) as error:
            raise KfineError(f"`token_ids` must be an integer tensor. Received: {short_repr(token_ids)}") from error
        if not token_ids.dtype.is_integer or token_ids.shape.rank not in (1, 2):
            raise KfineError(
                "`token_ids` must be an integer tensor of shape (seq,) or (batch, seq). "
                f"Received: dtype={token_ids.dtype.name}, shape={token_ids.shape}"
            )
        batch = tf.cast(token_ids, tf.int64)
        if token_ids.shape.rank == 1:
            batch = batch[tf.newaxis]
        shape = tf.shape(batch, out_type=tf.int64)
        per_token = self._causal_ids(batch, tf.fill(shape[:1], shape[1]))
        return per_token[0] if token_ids.shape.rank == 1 else per_token

    def _causal_ids(self, batch, lengths):
        """Per-token ids of int64 `(batch, seq)` rows of `lengths` tokens, position t linked from tokens <= t."""
        import tensorflow as tf

        shape = tf.shape(batch, out_type=tf.int64)
        positions = tf.range(shape[1])
        # Prefix t of each row: its tokens up to t, then [PAD] (0), which is
        # no surface form and no word continuation, so a mention may end at t.
        visible = positions[tf.newaxis, :] <= positions[:, tf.newaxis]
        prefixes = tf.where(visible[tf.newaxis], batch[:, tf.newaxis, :], tf.zeros([], tf.int64))
        prefix_lengths = tf.minimum(positions[tf.newaxis, :] + 1, lengths[:, tf.newaxis])
        per_prefix = self._token_matcher.dense(tf.reshape(prefixes, [-1, shape[1]]), tf.reshape(prefix_lengths, [-1]))
        return tf.linalg.diag_part(tf.reshape(per_prefix, [shape[0], shape[1], shape[1]]))

    def link_texts_tensor(self, texts):
        """Tokenizes `texts` in-graph and computes the entity id of every token.

        No `[BOS]`/`[EOS]` is added; they are never part of a mention, so
        prepending `[BOS]` to the token ids and `NO_ENTITY` to the entity
        ids keeps them aligned.

        Args:
            texts: string `tf.Tensor` (a scalar or a batch of shape `(batch,)`).

        Returns:
            `(token_ids, entity_ids)`: int32 tensors of equal shape, ragged
            `(batch, None)` for a batch and 1-D for a scalar.

        Raises:
            KfineError: the linker has no tokenizer.

        Example:

        >>> dataset = tf.data.Dataset.from_tensor_slices(sentences).batch(32)
        >>> dataset = dataset.map(linker.link_texts_tensor)
        """
        self._require_tokenizer("link_texts_tensor")
        token_ids = self.tokenizer.tokenize(texts)
        return token_ids, self.entity_ids_tensor(token_ids)

    # === Internals ===

    def _require_tokenizer(self, method):
        if self.tokenizer is None:
            raise KfineError(
                f"EntityLinker.{method} works on token ids and needs a tokenizer: "
                "create the linker with EntityLinker(knowledge_graph, tokenizer=...)."
            )

    def __repr__(self):
        return (
            f"<EntityLinker graph={self.knowledge_graph.name!r} surface_forms={len(self._surface_forms)} "
            f"case_sensitive={self.case_sensitive} tokenizer={self.tokenizer is not None}>"
        )

