"""`EntityLinker`: finds knowledge-graph entities in text and in token ids.

Three paths share one definition of a mention (a surface form of an entity,
chosen leftmost-longest, non-overlapping):

- text: character spans, pure Python, for evaluation and data preparation;
- token ids: spans of a tokenized sentence, eager Python;
- in-graph: per-token entity ids computed with TensorFlow ops only, for
  `tf.data` pipelines and `tf.function`s.

TensorFlow is imported only by the token paths, so `kfine.knowledge` still
loads without it.
"""

import functools
import itertools
import numbers
import re
import reprlib
import typing
import unicodedata

import numpy as np

from kfine.errors import KfineError
from kfine.knowledge.graph import KnowledgeGraph

NO_ENTITY = 0
"""Per-token id of a token outside any mention; entity `i` is stored as `i + 1`."""

# A trie node maps the next key to its child; the entity id of the surface
# form ending at the node is stored under "", which no key can be (text keys
# are non-empty strings, token keys are ints).
_ENTITY = ""
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
# For ASCII text without `_` the token patterns below reduce to this one,
# which `re` runs ~1.4x faster in ASCII mode; ASCII mode does not count the
# separators U+001C-U+001F as whitespace, so texts holding one keep the others.
_ASCII_PATTERN = re.compile(r"(\w+|[^\w\s])", re.ASCII)
_ASCII_SEPARATORS = re.compile("[\x1c-\x1f]")

# Window hashes for the in-graph matcher: two polynomial hashes modulo primes
# below 2**31, so every product fits in int64, packed into one int64 key.
_MODULI = (2_147_483_647, 2_147_483_629)
_HASH_ATTEMPTS = 8
# A hashed prefix's value: _PREFIX_ENTITY * (entity_id + 1) when it is a whole
# surface form, plus _PREFIX_EXTENDS when a longer form starts with it.
_PREFIX_ENTITY, _PREFIX_EXTENDS = 2, 1


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
    Surface forms live in a trie keyed by words, so a text costs one regex
    split plus about one dict lookup per word, whatever the number of
    aliases.

    **Token ids** (`link_token_ids`, `entity_ids_per_token`,
    `entity_ids_tensor`, `link_texts_tensor`; they need `tokenizer`). Each
    surface form is tokenized on its own and matched as a sequence of token
    ids. The tokenizer splits on whitespace and punctuation, so a name has
    the same ids alone and inside a sentence, and the token paths find the
    same mentions as `link` whenever mentions are delimited by whitespace or
    punctuation. A mention ends where a word does: the next token is no
    WordPiece continuation (`##...`). Token ids carry case, so with
    `case_sensitive=False` they match each surface form as written,
    lowercased, uppercased, title-cased and with a capital first letter.
    Surface forms with characters the tokenizer does not know (`[UNK]`) are
    left out of the token paths, since `[UNK]` would match any unknown word.

    When two entities share a surface form (after case folding, or once
    whitespace is ignored), an entity's own name wins over another's alias,
    and otherwise the smaller entity id wins.

    Args:
        knowledge_graph: `KnowledgeGraph`. Its entities, with their aliases,
            are what is linked.
        tokenizer: `WordPieceTokenizer` or None. Needed by the token paths.
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
                f"Received: knowledge_graph={_short_repr(knowledge_graph)}"
            )
        if not isinstance(case_sensitive, bool):
            raise KfineError(f"`case_sensitive` must be a bool. Received: case_sensitive={_short_repr(case_sensitive)}")
        if tokenizer is not None and not all(
            hasattr(tokenizer, name) for name in ("tokenize", "encode_batch", "vocabulary", "unk_id")
        ):
            raise KfineError(
                f"`tokenizer` must be a WordPieceTokenizer or None. Received: tokenizer={_short_repr(tokenizer)}"
            )
        self.knowledge_graph = knowledge_graph
        self.tokenizer = tokenizer
        self.case_sensitive = case_sensitive
        self._entities = knowledge_graph.entities
        self._basic_pattern, self._pattern = _token_patterns()
        # Names before aliases, each in entity-id order: the first form to
        # claim a key keeps it (see the class docstring).
        self._surface_forms = [(name, entity_id) for entity_id, name in enumerate(self._entities)] + [
            (alias, knowledge_graph.entity_id(entity)) for entity, alias in knowledge_graph.alias_pairs
        ]
        self._text_trie = _build_trie(
            (tuple(map(self._text_key, self._pattern.findall(form))), entity_id)
            for form, entity_id in self._surface_forms
        )
        self._token_trie = None
        self._token_matcher = None
        self._word_continuations = frozenset()
        if tokenizer is not None:
            token_forms = self._token_forms()
            self._token_trie = _build_trie(token_forms.items())
            # A mention must not end inside a word: the next token may not be
            # a WordPiece continuation ("Paris" + "##ian" is no mention).
            self._word_continuations = frozenset(
                token_id for token_id, token in enumerate(tokenizer.vocabulary) if token.startswith("##")
            )
            self._token_matcher = _HashedPrefixMatcher(
                self._token_trie,
                max(map(len, token_forms), default=1),
                self._word_continuations,
                len(tokenizer.vocabulary),
            )

    # === Text ===

    def link(self, text):
        """Returns the mentions of entities in `text`.

        Args:
            text: str.

        Returns:
            A list of `Mention`, in text order, non-overlapping.

        Raises:
            KfineError: `text` is not a str.
        """
        if not isinstance(text, str):
            raise KfineError(f"`text` must be a str. Received: text={_short_repr(text)}")
        is_ascii = text.isascii()
        basic = "_" not in text and (is_ascii or not _ASTRAL.search(text))
        if basic and is_ascii and not _ASCII_SEPARATORS.search(text):
            pattern = _ASCII_PATTERN
        else:
            pattern = self._basic_pattern if basic else self._pattern
        if is_ascii:
            # ASCII lowercasing keeps every length and character class, so
            # the offsets of the lowered text are those of `text`.
            parts = pattern.split(text if self.case_sensitive else text.lower())
            keys = parts[1::2]
        else:
            parts = pattern.split(text)
            keys = list(map(self._text_key, parts[1::2]))
        matches = _leftmost_longest(keys, self._text_trie)
        if not matches:
            return []
        # `parts` alternates whitespace and tokens, so running lengths give
        # each token's offsets: token k spans offsets[2k]..offsets[2k + 1].
        offsets = list(itertools.accumulate(map(len, parts)))
        firsts, stops, entity_ids = zip(*matches)
        starts = [offsets[2 * first] for first in firsts]
        ends = [offsets[2 * stop - 1] for stop in stops]
        # Column by column with `map`, so that the loops run in C.
        surfaces = map(text.__getitem__, map(slice, starts, ends))
        entities = map(self._entities.__getitem__, entity_ids)
        return list(map(_new_mention, zip(starts, ends, entities, entity_ids, surfaces)))

    def _text_key(self, token):
        if not token.isascii():
            token = unicodedata.normalize("NFC", token)
        return token if self.case_sensitive else token.casefold()

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
        matches = _leftmost_longest(_id_list(token_ids), self._token_trie, self._word_continuations)
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
        token_ids = _id_list(token_ids)
        per_token = [NO_ENTITY] * len(token_ids)
        for position in range(len(token_ids)):
            # Only the prefix's last mention can cover its last token.
            matches = _leftmost_longest(token_ids[: position + 1], self._token_trie, self._word_continuations)
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
            raise KfineError(f"`token_ids` must be an integer tensor. Received: {_short_repr(token_ids)}") from error
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

    def _token_forms(self):
        """Returns `{token ids of a surface form: entity id}` for the token paths."""
        variants = [lambda form: form]
        if not self.case_sensitive:
            variants += [str.lower, str.upper, str.title, lambda form: form[:1].upper() + form[1:]]
        # Every form as written comes before any case variant, so a variant
        # never takes a key from another entity's real name.
        texts, entity_ids = [], []
        for variant in variants:
            for form, entity_id in self._surface_forms:
                texts.append(variant(form))
                entity_ids.append(entity_id)
        token_forms = {}
        for ids, entity_id in zip(self.tokenizer.encode_batch(texts, add_bos=False), entity_ids):
            if ids and self.tokenizer.unk_id not in ids:
                token_forms.setdefault(tuple(ids), entity_id)
        return token_forms

    def __repr__(self):
        return (
            f"<EntityLinker graph={self.knowledge_graph.name!r} surface_forms={len(self._surface_forms)} "
            f"case_sensitive={self.case_sensitive} tokenizer={self.tokenizer is not None}>"
        )


class _HashedPrefixMatcher:
    """Finds the longest surface form at each position of a batch with TensorFlow ops.

    Every prefix of a tokenized surface form is hashed with two polynomial
    hashes modulo primes below 2**31, packed into one int64 key, in a
    `tf.lookup.StaticHashTable` whose value says which entity the prefix is
    (if it is a whole surface form) and whether a longer form extends it.
    The window starting at each position grows one token at a time, its
    hash updated in O(1), and only while it is such a prefix: most windows
    stop after a token or two, so the work is about that of one lookup per
    token, whatever the length of the longest form. A window followed by a
    word-continuation token is no hit. The bases are chosen at construction
    so that no two prefixes share a key; a window that is no prefix hits a
    key with probability below `num_keys * (n / 2**31) ** 2` (about 1e-11
    for the ~500k prefixes of 100k forms). `_leftmost_longest_tensor` then
    picks the mentions.

    Args:
        token_trie: the trie of tokenized surface forms (see `_build_trie`).
        max_length: int. Tokens in the longest surface form.
        word_continuations: set of int. The ids of WordPiece continuations.
        vocabulary_size: int.
    """

    def __init__(self, token_trie, max_length, word_continuations, vocabulary_size):
        import tensorflow as tf  # Imported here so that kfine.knowledge loads without TensorFlow.

        self.max_length = max_length
        continues_word = np.zeros(vocabulary_size, bool)
        continues_word[list(word_continuations)] = True
        self.bases, keys, values = _hashed_prefixes(token_trie)
        with tf.init_scope():
            self._continues_word = tf.constant(continues_word)
            self._table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(keys, tf.int64, shape=[len(keys)]), tf.constant(values, tf.int32, shape=[len(keys)])
                ),
                default_value=0,
            )
        # Traced once, so eager calls run as a graph too.
        self.dense = tf.function(
            self._match_dense, input_signature=[tf.TensorSpec([None, None], tf.int64), tf.TensorSpec([None], tf.int64)]
        )

    def _match_dense(self, token_ids, lengths):
        """`token_ids`: int64 `(batch, seq)`; `lengths`: int64 `(batch,)`; returns int32 `(batch, seq)`."""
        import tensorflow as tf

        shape = tf.shape(token_ids, out_type=tf.int64)
        batch_size, sequence_length = shape[0], shape[1]
        # Rows padded so that a window at any position can grow to
        # max_length tokens and still have a next token; flat, so that live
        # windows are one vector of positions.
        width = sequence_length + self.max_length
        flat_ids = tf.reshape(tf.pad(token_ids, [[0, 0], [0, self.max_length]]), [-1])
        known = (flat_ids >= 0) & (flat_ids < tf.size(self._continues_word, out_type=tf.int64))
        continues_word = known & tf.gather(self._continues_word, tf.where(known, flat_ids, 0))
        starts = tf.where(tf.sequence_mask(lengths, sequence_length))
        windows = starts[:, 0] * width + starts[:, 1]
        row_ends = starts[:, 0] * width + tf.gather(lengths, starts[:, 0])
        (base_1, base_2), (modulus_1, modulus_2) = self.bases, _MODULI

        def grow(length, windows, row_ends, hash_1, hash_2, longest, entity):
            next_token = tf.gather(flat_ids, windows + length - 1) + 1
            hash_1 = tf.math.floormod(hash_1 * base_1 + next_token, modulus_1)
            hash_2 = tf.math.floormod(hash_2 * base_2 + next_token, modulus_2)
            value = self._table.lookup(hash_1 * 2**31 + hash_2)
            value = tf.where(windows + length <= row_ends, value, 0)
            hit = (value >= _PREFIX_ENTITY) & ~tf.gather(continues_word, windows + length)
            hits = tf.boolean_mask(windows, hit)[:, tf.newaxis]
            longest = tf.tensor_scatter_nd_update(longest, hits, tf.fill(tf.shape(hits)[:1], tf.cast(length, tf.int32)))
            entity = tf.tensor_scatter_nd_update(entity, hits, tf.boolean_mask(value // _PREFIX_ENTITY, hit))
            grows = (value % _PREFIX_ENTITY) == _PREFIX_EXTENDS
            masked = [tf.boolean_mask(tensor, grows) for tensor in (windows, row_ends, hash_1, hash_2)]
            return (length + 1, *masked, longest, entity)

        empty = tf.zeros([batch_size * width], tf.int32)
        *_, longest, entity = tf.while_loop(
            lambda length, windows, *_: (length <= self.max_length) & (tf.size(windows) > 0),
            grow,
            (tf.constant(1, tf.int64), windows, row_ends, tf.zeros_like(windows), tf.zeros_like(windows), empty, empty),
        )
        longest = tf.reshape(longest, [batch_size, width])[:, :sequence_length]
        entity = tf.reshape(entity, [batch_size, width])[:, :sequence_length]
        return _leftmost_longest_tensor(longest, entity)


def _leftmost_longest_tensor(longest, entity):
    """Per-token entity ids of the leftmost-longest mentions, given the longest hit at each position.

    The search at position `p` goes on at `p + longest[p]`, or `p + 1` where
    nothing starts, so the chosen mentions start at the positions with a hit
    on the chain of jumps from 0. Pointer doubling finds the chain's k-th
    position for every k at once in log2(seq) rounds of gathers, instead of
    a seq-step loop (a `tf.scan` over positions took ~20x longer on a CPU). A mention
    then adds its id at its start and subtracts it at its end, and a
    cumulative sum spreads it over its tokens.

    Args:
        longest: int32 `(batch, seq)`. The length of the longest surface form
            starting at each position, 0 where none does.
        entity: int32 `(batch, seq)`. Its `entity_id + 1`.

    Returns:
        int32 `(batch, seq)`.
    """
    import tensorflow as tf

    batch_size, sequence_length = tf.shape(longest)[0], tf.shape(longest)[1]
    # Position seq, the end, jumps to itself.
    jumps = tf.range(sequence_length) + tf.maximum(longest, 1)
    jumps = tf.pad(jumps, [[0, 0], [0, 1]], constant_values=sequence_length)
    steps = tf.range(sequence_length + 1)

    def double(round_index, chain, jumps):
        # After round r, `chain[:, k]` has made the jumps of k's lowest r bits;
        # `jumps` jumps 2**r times at once.
        odd = tf.bitwise.bitwise_and(tf.bitwise.right_shift(steps, round_index), 1) > 0
        chain = tf.where(odd, tf.gather(jumps, chain, batch_dims=1), chain)
        return round_index + 1, chain, tf.gather(jumps, jumps, batch_dims=1)

    _, chain, _ = tf.while_loop(
        lambda round_index, chain, jumps: tf.bitwise.left_shift(1, round_index) <= sequence_length,
        double,
        (tf.constant(0), tf.zeros_like(jumps), jumps),
    )
    rows = tf.broadcast_to(tf.range(batch_size)[:, tf.newaxis], tf.shape(chain))
    on_chain = tf.scatter_nd(
        tf.reshape(tf.stack([rows, chain], axis=-1), [-1, 2]),
        tf.ones([tf.size(chain)], tf.int32),
        tf.stack([batch_size, sequence_length + 1]),
    )
    starts = tf.where((on_chain[:, :-1] > 0) & (longest > 0))
    mention_entity = tf.gather_nd(entity, starts)
    ends = tf.stack([starts[:, 0], starts[:, 1] + tf.cast(tf.gather_nd(longest, starts), tf.int64)], axis=-1)
    deltas = tf.scatter_nd(
        tf.concat([starts, ends], axis=0),
        tf.concat([mention_entity, -mention_entity], axis=0),
        tf.cast(tf.stack([batch_size, sequence_length + 1]), tf.int64),
    )
    return tf.cumsum(deltas, axis=1)[:, :-1]


def _hashed_prefixes(token_trie):
    """Returns `(bases, keys, values)` of every prefix of a surface form in `token_trie`.

    A key is the int64 hash `_HashedPrefixMatcher` computes in-graph for a
    window of token ids, under hash bases that give distinct prefixes
    distinct keys. A value is `_PREFIX_ENTITY * (entity_id + 1)` if the
    prefix is a whole surface form (0 otherwise), plus `_PREFIX_EXTENDS` if
    a longer form starts with it.

    Raises:
        KfineError: no such bases were found (practically never).
    """
    modulus_1, modulus_2 = _MODULI
    for attempt in range(_HASH_ATTEMPTS):
        rng = np.random.default_rng(attempt)
        base_1, base_2 = (int(rng.integers(2, modulus)) for modulus in _MODULI)
        keys, values = [], []
        pending = [(token_trie, 0, 0)]
        while pending:
            node, hash_1, hash_2 = pending.pop()
            for token_id, child in node.items():
                if token_id == _ENTITY:
                    continue
                child_1 = (hash_1 * base_1 + token_id + 1) % modulus_1
                child_2 = (hash_2 * base_2 + token_id + 1) % modulus_2
                entity_id = child.get(_ENTITY)
                keys.append(child_1 * 2**31 + child_2)
                values.append(
                    (0 if entity_id is None else _PREFIX_ENTITY * (entity_id + 1))
                    + (_PREFIX_EXTENDS if len(child) > (entity_id is not None) else 0)
                )
                pending.append((child, child_1, child_2))
        if len(set(keys)) == len(keys):
            return (base_1, base_2), keys, values
    raise KfineError(
        f"No collision-free hash of the {len(keys)} prefixes of tokenized surface forms was found "
        f"in {_HASH_ATTEMPTS} attempts; this should not happen, please report it."
    )


def _build_trie(forms):
    """Builds a trie from `(keys, entity_id)` pairs; the first pair to claim a key sequence keeps it."""
    trie = {}
    for keys, entity_id in forms:
        if not keys:
            continue
        node = trie
        for key in keys:
            node = node.setdefault(key, {})
        node.setdefault(_ENTITY, entity_id)
    return trie


def _leftmost_longest(keys, trie, word_continuations=frozenset()):
    """Returns `(start, end, entity_id)` of the leftmost-longest matches of `trie` in `keys`.

    A match may not be followed by a key of `word_continuations`.
    """
    matches = []
    size = len(keys)
    free_from = 0
    # Only positions whose key starts some surface form are candidates; the
    # filter runs in C. The loop below is the hot path of `link`: plain
    # locals, no tuple per step.
    for start in itertools.compress(range(size), map(trie.__contains__, keys)):
        if start < free_from:
            continue
        node = trie[keys[start]]
        end = start + 1
        best_end = 0
        while True:
            if _ENTITY in node and (end == size or keys[end] not in word_continuations):
                best_end, best_entity = end, node[_ENTITY]
            if end == size:
                break
            node = node.get(keys[end])
            if node is None:
                break
            end += 1
        if best_end:
            matches.append((start, best_end, best_entity))
            free_from = best_end
    return matches


def _id_list(token_ids):
    """Returns `token_ids` as a list or tuple of Python ints, or raises `KfineError`."""
    if hasattr(token_ids, "numpy") and callable(token_ids.numpy):
        token_ids = token_ids.numpy()
    if isinstance(token_ids, np.ndarray):
        if token_ids.ndim != 1 or not np.issubdtype(token_ids.dtype, np.integer):
            raise KfineError(
                "`token_ids` must be a 1-D sequence of ints. "
                f"Received: an array of dtype={token_ids.dtype}, shape={token_ids.shape}"
            )
        return token_ids.tolist()
    if not isinstance(token_ids, (list, tuple)):
        raise KfineError(f"`token_ids` must be a 1-D sequence of ints. Received: token_ids={_short_repr(token_ids)}")
    if set(map(type, token_ids)) <= {int}:  # The common case, checked in C.
        return token_ids
    if not all(isinstance(token_id, numbers.Integral) and not isinstance(token_id, bool) for token_id in token_ids):
        raise KfineError(f"`token_ids` must be a 1-D sequence of ints. Received: token_ids={_short_repr(token_ids)}")
    return [int(token_id) for token_id in token_ids]


@functools.cache
def _token_patterns():
    """Returns the regexes that split text into words and punctuation, capturing them.

    Words are runs of letters, digits and combining marks (Python's `\\w`
    leaves out marks such as Devanagari vowel signs, which would otherwise
    split words, and takes in `_`, which the tokenizer splits off); a
    punctuation token is one other non-space character with the marks that
    follow it, so NFC never composes across tokens.

    The second regex is that definition. The first, about twice as fast,
    gives the same tokens for texts without `_` and without characters
    beyond the Basic Multilingual Plane: it counts `_` as a word character
    and knows only the marks of that plane (`re` checks a character class
    holding astral ranges about 3x slower). Built on first use, since
    scanning the Unicode tables takes ~50 ms.
    """

    def marks_class(codes):
        marks = [code for code in codes if unicodedata.category(chr(code)).startswith("M")]
        ranges = []
        for _, run in itertools.groupby(enumerate(marks), key=lambda pair: pair[1] - pair[0]):
            run = [code for _, code in run]
            ranges.append(f"{re.escape(chr(run[0]))}-{re.escape(chr(run[-1]))}")
        return "".join(ranges)

    basic = marks_class(range(0x10000))
    marks = basic + marks_class(itertools.chain(range(0x10000, 0x20000), range(0xE0000, 0xE0200)))
    return (
        re.compile(rf"([\w{basic}]+|[^\w\s{basic}][{basic}]*)"),
        re.compile(rf"((?:[^\W_]|[{marks}])+|(?:_|[^\w\s{marks}])[{marks}]*)"),
    )


def _short_repr(value):
    return f"{reprlib.repr(value)} of type {type(value).__name__}"
