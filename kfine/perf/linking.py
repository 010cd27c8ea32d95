"""Entity-linking throughput: `EntityLinker.link` against flashtext and pyahocorasick.

All three get the same synthetic alias set (every entity a name and an
alias, made of random syllables, one to three words) and the same text
(filler words with a mention every few words), match case-sensitively and
whole words only, leftmost-longest; the number of mentions each finds is
recorded beside its speed, so a fast tool that finds less shows up.
Throughput is tokens (words) over CPU seconds, the wall-clock figure beside it.

What each returns: `EntityLinker.link` a `Mentions` sequence (the spans
and entity ids as arrays; the `Mention` objects are made when it is first
read), flashtext a list of `(entity, start, end)`, and the pyahocorasick
contender a list of `(entity, start, end)` from `iter_long` (leftmost-longest
in C, which may miss a short name that a longer key hides; the linker
does not) filtered to whole words in Python. A fourth contender,
`kfine_read`, reads every `Mention` of the linker's result, beside them.

The linkers run in a fresh process, as in an application that imports
kfine and links text: in the perf run's own process, the heap the training
measurements left behind (over a million objects) makes every garbage
collection that a linker's allocations trigger cost tens of milliseconds,
landing on whichever contender happens to trigger it. Each call starts
after a `gc.collect()` for the same reason.
"""

import concurrent.futures
import gc
import importlib
import multiprocessing
import re

import numpy as np

from kfine.errors import KfineError
from kfine.knowledge.graph import KnowledgeGraph
from kfine.knowledge.linker import EntityLinker
from kfine.perf.timing import interleaved, min_ratio, paired_ratio

_SYLLABLES = [consonant + vowel for consonant in "bdfgklmnprstvz" for vowel in "aeiou"]
_FILLER = (
    "the of and a to in is was it for on with as by at from that this which were are be has had "
    "city river north south old new near between along its their over under after before"
).split()
_WORD = re.compile(r"\w+")


def _synthetic_words(rng, count, syllables):
    picks = rng.integers(len(_SYLLABLES), size=(count, syllables))
    return ["".join(_SYLLABLES[index] for index in row).capitalize() for row in picks]


def synthetic_aliases(num_entities, seed=0):
    """A `KnowledgeGraph` of `num_entities` synthetic entities, each with one alias.

    Names and aliases are 1-3 capitalized words of 2-3 random syllables,
    all distinct, so there are `2 * num_entities` surface forms.
    """
    rng = np.random.default_rng(seed)
    vocabulary = sorted(set(_synthetic_words(rng, 4 * num_entities, 2) + _synthetic_words(rng, 4 * num_entities, 3)))
    forms = set()
    while len(forms) < 2 * num_entities:
        picks = rng.integers(len(vocabulary), size=(2 * num_entities, 3))
        lengths = rng.choice([1, 2, 3], size=2 * num_entities, p=[0.3, 0.5, 0.2])
        forms.update(" ".join(vocabulary[index] for index in row[:length]) for row, length in zip(picks, lengths))
    forms = sorted(forms)[: 2 * num_entities]
    order = rng.permutation(len(forms))
    names = [forms[index] for index in order[:num_entities]]
    aliases = [forms[index] for index in order[num_entities:]]
    # Each entity is the subject of one fact, so the graph holds exactly these entities and one hub.
    triples = [(name, "located_in", "Hub") for name in names]
    return KnowledgeGraph(triples, aliases=list(zip(names, aliases)), name="synthetic_aliases")


def synthetic_text(graph, num_words, mention_every=8, seed=0):
    """About `num_words` words of filler with a surface form of `graph` every `mention_every` words."""
    rng = np.random.default_rng(seed)
    forms = [name for entity in graph.entities for name in graph.names(entity)]
    words = []
    for mention in rng.integers(len(forms), size=-(-num_words // mention_every)):
        words.extend(_FILLER[index] for index in rng.integers(len(_FILLER), size=mention_every - 1))
        words.append(forms[mention])
    sentences = [" ".join(words[start : start + 16]) + "." for start in range(0, len(words), 16)]
    return " ".join(sentences)


def _peer(module):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise KfineError(
            f"kfine bench --perf compares the linker with flashtext and pyahocorasick; {module} is not installed "
            "(pip install -e '.[dev]')"
        ) from None


def _flashtext_linker(graph):
    KeywordProcessor = _peer("flashtext").KeywordProcessor

    processor = KeywordProcessor(case_sensitive=True)
    for entity in graph.entities:
        for name in graph.names(entity):
            processor.add_keyword(name, entity)
    return lambda text: processor.extract_keywords(text, span_info=True)


def _ahocorasick_linker(graph):
    ahocorasick = _peer("ahocorasick")

    automaton = ahocorasick.Automaton()
    for entity in graph.entities:
        for name in graph.names(entity):
            automaton.add_word(name, (len(name), entity))
    automaton.make_automaton()

    def link(text):
        # Leftmost-longest in C; then keep whole words only, as the other two do.
        mentions = []
        for end, (length, entity) in automaton.iter_long(text):
            start = end - length + 1
            before = text[start - 1] if start else " "
            after = text[end + 1] if end + 1 < len(text) else " "
            if not (before.isalnum() or before == "_" or after.isalnum() or after == "_"):
                mentions.append((entity, start, end + 1))
        return mentions

    return link


def measure_linking(size):
    """Links the same text with the three linkers, in turns, in a fresh process; returns `(ratios, raw)`.

    Args:
        size: `PerfSize` (`alias_entities`, `linking_words`, `linking_repeats`).
    """
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_measure_linking_here, size).result()


def _measure_linking_here(size):
    graph = synthetic_aliases(size.alias_entities)
    text = synthetic_text(graph, size.linking_words)
    num_tokens = len(_WORD.findall(text))
    linker = EntityLinker(graph)
    contenders = {"kfine": linker.link, "flashtext": _flashtext_linker(graph),
                  "pyahocorasick": _ahocorasick_linker(graph), "kfine_read": lambda text: list(linker.link(text))}
    mentions = {name: len(link(text)) for name, link in contenders.items()}
    timings = interleaved(
        {name: (lambda link=link: link(text)) for name, link in contenders.items()},
        size.linking_repeats,
        before_each=gc.collect,
    )
    # Linking is single-threaded: CPU seconds are what it takes on an idle core (see `interleaved`).
    tokens_per_second = {name: num_tokens / timing["cpu_seconds"] for name, timing in timings.items()}
    wall_tokens_per_second = {name: num_tokens / timing["seconds"] for name, timing in timings.items()}
    # kfine's tokens/s over a peer's is the peer's CPU time over kfine's.
    peers = {"linker_vs_flashtext": "flashtext", "linker_vs_ahocorasick": "pyahocorasick"}
    ratios = {name: paired_ratio(timings, peer, "kfine", cpu=True) for name, peer in peers.items()}
    raw = {
        "surface_forms": sum(len(graph.names(entity)) for entity in graph.entities),
        "aliases": len(graph.alias_pairs),
        "text_tokens": num_tokens,
        "text_characters": len(text),
        "mentions_found": mentions,
        "tokens_per_second": tokens_per_second,
        "wall_tokens_per_second": wall_tokens_per_second,
        "min_of_rounds": {name: min_ratio(timings, peer, "kfine", cpu=True) for name, peer in peers.items()},
        # `linker_vs_ahocorasick` when the caller reads every `Mention`.
        "read_vs_ahocorasick": paired_ratio(timings, "pyahocorasick", "kfine_read", cpu=True),
        "timings": timings,
    }
    return ratios, raw
