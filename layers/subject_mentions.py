"""Which KG subject a token sequence names first: a hash table of spellings, looked up with Keras ops.

`FactDatastore` reads, at each position, the tokens before it and asks which
subject they name, so that the keys of that subject's facts win the vote.
Only Keras ops on fixed-size weights: it runs under XLA, saves in the
`.keras` file and needs no lookup-table resource.
"""

import keras
import numpy as np

from kfine.knowledge.linker_graph import HASH_MODULI
from kfine.knowledge.linker_tokens import token_forms

# A spelling sits at most this many slots after its bucket (linear probing).
PROBES = 8
_BUILD_ATTEMPTS = 8


def subject_spellings(tokenizer, knowledge_graph):
    """Returns `{token ids: entity id}` of every subject's name and aliases as `tokenizer` spells them in context."""
    subjects = {subject for subject, _, _ in knowledge_graph.triples}
    forms = [(name, knowledge_graph.entity_id(name)) for name in sorted(subjects)]
    forms += [(alias, knowledge_graph.entity_id(entity)) for entity, alias in knowledge_graph.alias_pairs
              if entity in subjects]
    return token_forms(tokenizer, forms, case_sensitive=True)


def spelling_table(spellings, seed=0):
    """Hashes `spellings` into an open-addressing table that `first_subject` reads.

    Args:
        spellings: dict `{tuple of token ids: entity id}`.
        seed: int. Seeds the hash bases.

    Returns:
        dict with `bases` (two ints), `max_length` (int) and the int32 arrays
        `check`, `length`, `subject` of one power-of-two size: at the slot of
        a spelling, its second hash, its length in tokens and its entity id
        (length 0 marks an empty slot).
    """
    max_length = max(map(len, spellings), default=1)
    size = 1 << max(4, (4 * max(len(spellings), 1) - 1).bit_length())  # load factor <= 1/4
    for attempt in range(_BUILD_ATTEMPTS):
        rng = np.random.default_rng(seed + attempt)
        bases = tuple(int(rng.integers(2, modulus)) for modulus in HASH_MODULI)
        check, length, subject = (np.zeros(size, "int32") for _ in range(3))
        placed = True
        for ids, entity_id in spellings.items():
            first, second = (_hash(ids, base, modulus) for base, modulus in zip(bases, HASH_MODULI))
            slots = [(first + probe) % size for probe in range(PROBES)]
            if any(length[slot] == len(ids) and check[slot] == second for slot in slots):
                placed = False  # two spellings share both hashes: other bases
                break
            free = next((slot for slot in slots if length[slot] == 0), None)
            if free is None:
                placed = False
                break
            check[free], length[free], subject[free] = second, len(ids), entity_id
        if placed:
            return {"bases": bases, "max_length": max_length, "check": check, "length": length, "subject": subject}
        size *= 2
    raise ValueError(f"No hash table of the {len(spellings)} subject spellings was found; this should not happen.")


def _hash(ids, base, modulus):
    """The hash `first_subject` computes for a window ending with `ids`: sum of (id + 1) * base**k, k from the end."""
    value = 0
    for power, token_id in enumerate(reversed(ids)):
        value = (value + (token_id + 1) * pow(base, power, modulus)) % modulus
    return value


def first_subject(windows, table, bases, max_length, num_entities):
    """The entity id of the earliest-starting spelling in each window (the longest there), -1 where none.

    Args:
        windows: int `(batch, sequence, context)`. The tokens up to each
            position, the position's own last; `[PAD]` (0), which no
            spelling holds, before the sequence's start.
        table: `(check, length, subject)` int32 tensors from `spelling_table`.
        bases: the two hash bases from `spelling_table`.
        max_length: int. Tokens in the longest spelling.
        num_entities: int. An upper bound of the entity ids.

    Returns:
        int32 `(batch, sequence)`.
    """
    check, length, subject = table
    size = keras.ops.shape(check)[0]
    context = keras.ops.shape(windows)[-1]
    tokens = keras.ops.cast(windows, "int64") + 1
    hashes = [keras.ops.zeros_like(tokens), keras.ops.zeros_like(tokens)]
    powers = [1, 1]
    # Each candidate mention ends at a window position `end`; its key is
    # smaller for an earlier start, then for a longer spelling.
    best = None
    positions = keras.ops.arange(context, dtype="int64")
    for span in range(1, max_length + 1):
        shifted = keras.ops.pad(tokens, [[0, 0], [0, 0], [span - 1, 0]])[..., :context] if span > 1 else tokens
        for index, modulus in enumerate(HASH_MODULI):
            hashes[index] = (hashes[index] + shifted * powers[index]) % modulus
            powers[index] = powers[index] * bases[index] % modulus
        bucket = keras.ops.cast(hashes[0] % size, "int32")
        found = keras.ops.full(keras.ops.shape(bucket), -1, "int32")
        for probe in range(PROBES):
            slot = (bucket + probe) % size
            hit = keras.ops.logical_and(
                keras.ops.take(length, slot) == span,
                keras.ops.cast(keras.ops.take(check, slot), "int64") == hashes[1],
            )
            found = keras.ops.where(hit, keras.ops.take(subject, slot), found)
        start = positions - (span - 1)
        key = (start * (max_length + 1) + (max_length - span)) * (num_entities + 1) + keras.ops.cast(found, "int64")
        # Only whole spellings inside the window count.
        valid = keras.ops.logical_and(found >= 0, start >= 0)
        key = keras.ops.where(valid, key, np.iinfo("int64").max)
        key = keras.ops.min(key, axis=-1)
        best = key if best is None else keras.ops.minimum(best, key)
    return keras.ops.cast(
        keras.ops.where(best == np.iinfo("int64").max, -1, best % (num_entities + 1)), "int32"
    )
