"""The in-graph token matcher of `EntityLinker`: per-token entity ids with TensorFlow ops only.

Used in `tf.data` pipelines and `tf.function`s; TensorFlow is imported
inside, so `kfine.knowledge` still loads without it.
"""

import numpy as np

from kfine.errors import KfineError
from kfine.knowledge.linker_tokens import ENTITY

# Window hashes for the in-graph matcher: two polynomial hashes modulo primes
# below 2**31, so every product fits in int64, packed into one int64 key.
HASH_MODULI = (2_147_483_647, 2_147_483_629)
_HASH_ATTEMPTS = 8
# A hashed prefix's value: _PREFIX_ENTITY * (entity_id + 1) when it is a whole
# surface form, plus _PREFIX_EXTENDS when a longer form starts with it.
_PREFIX_ENTITY, _PREFIX_EXTENDS = 2, 1


class HashedPrefixMatcher:
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
        token_trie: the trie of tokenized surface forms (see `build_trie`).
        max_length: int. Tokens in the longest surface form.
        word_continuations: set of int. The ids of tokens that continue a word.
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
        (base_1, base_2), (modulus_1, modulus_2) = self.bases, HASH_MODULI

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

    A key is the int64 hash `HashedPrefixMatcher` computes in-graph for a
    window of token ids, under hash bases that give distinct prefixes
    distinct keys. A value is `_PREFIX_ENTITY * (entity_id + 1)` if the
    prefix is a whole surface form (0 otherwise), plus `_PREFIX_EXTENDS` if
    a longer form starts with it.

    Raises:
        KfineError: no such bases were found (practically never).
    """
    modulus_1, modulus_2 = HASH_MODULI
    for attempt in range(_HASH_ATTEMPTS):
        rng = np.random.default_rng(attempt)
        base_1, base_2 = (int(rng.integers(2, modulus)) for modulus in HASH_MODULI)
        keys, values = [], []
        pending = [(token_trie, 0, 0)]
        while pending:
            node, hash_1, hash_2 = pending.pop()
            for token_id, child in node.items():
                if token_id == ENTITY:
                    continue
                child_1 = (hash_1 * base_1 + token_id + 1) % modulus_1
                child_2 = (hash_2 * base_2 + token_id + 1) % modulus_2
                entity_id = child.get(ENTITY)
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

