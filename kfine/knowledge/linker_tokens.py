"""Token-id tries of `EntityLinker`: surface forms as a tokenizer spells them, matched leftmost-longest."""

import itertools
import numbers
import reprlib

import numpy as np

from kfine.errors import KfineError

# A trie node maps the next key to its child; the entity id of the surface
# form ending at the node is stored under "", which no key can be (token keys are ints).
ENTITY = ""


def token_forms(tokenizer, surface_forms, case_sensitive):
    """Returns `{token ids of a surface form: entity id}`, as the tokenizer spells forms in context.

    Each form is tokenized alone (as at the start of a sentence), as it
    follows a space (`encode_in_context`: GPT-2's "ĠParis", SentencePiece's
    "▁Paris"; the same ids for WordPiece) and glued to punctuation. Forms with a token the tokenizer
    does not know are left out, since it would match any unknown word.

    Args:
        tokenizer: `WordPieceTokenizer` or `PresetTokenizer`.
        surface_forms: list of `(form, entity_id)`; the first to claim ids keeps them.
        case_sensitive: bool. Without it, forms are also matched lowercased,
            uppercased, title-cased and with a capital first letter.
    """
    variants = [lambda form: form]
    if not case_sensitive:
        variants += [str.lower, str.upper, str.title, lambda form: form[:1].upper() + form[1:]]
    # Every form as written comes before any case variant, so a variant
    # never takes a key from another entity's real name.
    texts, entity_ids = [], []
    for variant in variants:
        for form, entity_id in surface_forms:
            texts.append(variant(form))
            entity_ids.append(entity_id)
    forms = {}
    rows = zip(tokenizer.encode_batch(texts, add_bos=False), tokenizer.encode_in_context(texts),
               _encode_after_punctuation(tokenizer, texts))
    for spellings, entity_id in zip(rows, entity_ids):
        for ids in spellings:
            if ids and tokenizer.unk_id not in ids:
                forms.setdefault(tuple(ids), entity_id)
    return forms


def _encode_after_punctuation(tokenizer, texts):
    """The ids of each text right after an opening parenthesis, "(Paris" ([] where a token spans both).

    SentencePiece spells a word glued to punctuation without its "▁"
    ("▁(", "Paris"), unlike the same word alone ("▁Paris").
    """
    opening = tokenizer.encode_batch(["("], add_bos=False)[0]
    rows = tokenizer.encode_batch(["(" + text for text in texts], add_bos=False)
    return [row[len(opening):] if row[: len(opening)] == opening else [] for row in rows]


def build_trie(forms):
    """Builds a trie from `(keys, entity_id)` pairs; the first pair to claim a key sequence keeps it."""
    trie = {}
    for keys, entity_id in forms:
        if not keys:
            continue
        node = trie
        for key in keys:
            node = node.setdefault(key, {})
        node.setdefault(ENTITY, entity_id)
    return trie


def leftmost_longest(keys, trie, word_continuations=frozenset()):
    """Returns `(start, end, entity_id)` of the leftmost-longest matches of `trie` in `keys`.

    A match may not be followed by a key of `word_continuations`.
    """
    matches = []
    size = len(keys)
    free_from = 0
    # Only positions whose key starts some surface form are candidates; the
    # filter runs in C. The loop below runs per token of a batch: plain
    # locals, no tuple per step.
    for start in itertools.compress(range(size), map(trie.__contains__, keys)):
        if start < free_from:
            continue
        node = trie[keys[start]]
        end = start + 1
        best_end = 0
        while True:
            if ENTITY in node and (end == size or keys[end] not in word_continuations):
                best_end, best_entity = end, node[ENTITY]
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


def id_list(token_ids):
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
        raise KfineError(f"`token_ids` must be a 1-D sequence of ints. Received: token_ids={short_repr(token_ids)}")
    if set(map(type, token_ids)) <= {int}:  # The common case, checked in C.
        return token_ids
    if not all(isinstance(token_id, numbers.Integral) and not isinstance(token_id, bool) for token_id in token_ids):
        raise KfineError(f"`token_ids` must be a 1-D sequence of ints. Received: token_ids={short_repr(token_ids)}")
    return [int(token_id) for token_id in token_ids]



def short_repr(value):
    return f"{reprlib.repr(value)} of type {type(value).__name__}"
