"""A kNN-LM datastore: a language model's own hidden states over verbalized KG facts."""

import keras
import numpy as np

from kfine.knowledge.verbalizer import Verbalizer
from kfine.layers.knowledge_graph_encoder import check_fingerprint
from kfine.layers.layer_utils import check_positive_int
from kfine.layers.subject_mentions import first_subject, spelling_table, subject_spellings

# Floor of the mixed probabilities before the log, so that a token neither
# distribution gives any mass gets a large negative, finite logit.
_SMALLEST_PROBABILITY = 1e-12
# Tokens read before a query to find the subject: a prompt and the answer so far.
DEFAULT_CONTEXT = 32


@keras.saving.register_keras_serializable(package="kfine")
class FactDatastore(keras.layers.Layer):
    """Mixes a language model's next-token distribution with the KG facts nearest its hidden state.

    kNN-LM (Khandelwal et al., ICLR 2020) over a knowledge graph: each fact,
    written out with each training template, is read by the language model;
    the hidden state before each token of the object's name and of the rest
    of the sentence up to `[EOS]` becomes a key whose value is that token.
    At a query the `top_k` keys nearest by cosine similarity vote with
    weights `softmax(similarity / temperature)`, and
    `p = interpolation * p_knn + (1 - interpolation) * p_lm`. The keys live
    in the model's own space, so a subject never seen in training text still
    finds its facts; `refresh` recomputes them after the backbone trains.
    A key inside a name (any but the name's first token) also remembers the
    token it followed and takes part in the vote only where the query's own
    token is that one: a multi-token name is continued as it was spelled in
    the datastore, not with a piece of another name whose hidden state is
    near (a stateless form of RetoMaton's pointers between consecutive
    entries, Alon et al., ICML 2022). Under a wording the datastore never
    held, this is what keeps "Copenhagen" from becoming "Copenhagena".
    `CausalLanguageModel.add` places the layer after the head and hands it
    `[hidden_states, logits, token_ids]` (`reads_hidden_states = True`);
    `model.add(KnowledgeInjectionLayer(kg, templates=templates))` adds one.

    Args:
        size: int. Number of keys.
        hidden_dim: int. Width of the hidden states (and keys).
        vocabulary_size: int. Width of the logits.
        top_k: int. Neighbours read per query.
        temperature: float. Softmax temperature over cosine similarities.
            Small by default: one template's hidden states for different
            subjects lie within a few hundredths in cosine, and at 0.05 the
            keys of similar subjects outvoted a fact's own key (an edited
            fact kept its old answer in 16% of 1000 edits on the GPT-2 default).
        interpolation: float in [0, 1]. Weight of the neighbours' vote.
        kg_fingerprint: str or None. The KG the keys were made from.
        context: int. Tokens read before each query to find its subject.
        mention_table_size: int. Slots of the spelling hash table; 0 turns
            subject matching off.
        max_mention_length: int. Tokens in the longest subject spelling.
        mention_hash_bases: list of two ints, the table's hash bases.
        num_entities: int. Entities of the KG (an upper bound of subject ids).
        **kwargs: standard `keras.layers.Layer` arguments.

    Call arguments:
        inputs: list `[hidden_states, logits, token_windows]`: float
            `(batch, sequence, hidden_dim)`, float `(batch, sequence,
            vocabulary_size)` and int `(batch, sequence, context)`, the
            `context` tokens up to each position (the token the hidden state
            was computed at last, `[PAD]` before the sequence's start;
            `CausalLanguageModel` builds them from `token_context`), or int
            `(batch, sequence)`, the positions' own tokens (a context of 1).

    Returns:
        float32 `(batch, sequence, vocabulary_size)`: the log of the mixed
        distribution, usable as logits.

    Example:

    >>> datastore = FactDatastore.from_model(model, knowledge_graph, templates)
    >>> model.add(datastore)  # after the head; reads hidden states, logits and token ids
    >>> model(token_ids).shape
    (1, 7, 1254)
    """

    reads_hidden_states = True

    def __init__(
        self,
        size,
        hidden_dim,
        vocabulary_size,
        top_k=8,
        temperature=0.005,
        interpolation=0.8,
        kg_fingerprint=None,
        context=1,
        mention_table_size=0,
        max_mention_length=1,
        mention_hash_bases=None,
        num_entities=1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("size", size), ("hidden_dim", hidden_dim), ("vocabulary_size", vocabulary_size)):
            check_positive_int(name, value)
        for name, value in (("top_k", top_k), ("context", context), ("max_mention_length", max_mention_length),
                            ("num_entities", num_entities)):
            check_positive_int(name, value)
        if not isinstance(mention_table_size, int) or mention_table_size < 0:
            raise ValueError(f"`mention_table_size` must be an int >= 0. Received: {mention_table_size!r}")
        if mention_table_size and (mention_hash_bases is None or len(mention_hash_bases) != 2):
            raise ValueError(
                "`mention_hash_bases` must be the two hash bases of the spelling table when mention_table_size > 0. "
                f"Received: mention_hash_bases={mention_hash_bases!r}"
            )
        if not isinstance(temperature, (int, float)) or temperature <= 0:
            raise ValueError(f"`temperature` must be a positive number. Received: temperature={temperature!r}")
        if not isinstance(interpolation, (int, float)) or not 0 <= interpolation <= 1:
            raise ValueError(f"`interpolation` must be in [0, 1]. Received: interpolation={interpolation!r}")
        self.size = size
        self.hidden_dim = hidden_dim
        self.vocabulary_size = vocabulary_size
        self.top_k = top_k
        self.temperature = float(temperature)
        self.interpolation = float(interpolation)
        self.kg_fingerprint = kg_fingerprint
        self.context = context
        self.mention_table_size = mention_table_size
        self.max_mention_length = max_mention_length
        self.mention_hash_bases = None if mention_hash_bases is None else [int(base) for base in mention_hash_bases]
        self.num_entities = num_entities

    @property
    def token_context(self):
        """Tokens per position that `CausalLanguageModel` hands this layer (see `call`)."""
        return self.context

    @classmethod
    def from_model(cls, model, knowledge_graph, templates, batch_size=256, verbose=0, **kwargs):
        """Builds a datastore from `model`'s hidden states over every fact of `knowledge_graph`.

        Args:
            model: `CausalLanguageModel` (with `hidden_states` and `tokenizer`).
            knowledge_graph: `KnowledgeGraph`. Every fact becomes keys.
            templates: `Templates`. Only the training templates are used
                (the reserved paraphrase template never is).
            batch_size: int. Sentences per forward pass.
            verbose: int. 1 shows a progress bar.
            **kwargs: `top_k`, `temperature`, `interpolation`, `context`,
                `name`; `match_subjects=False` builds no spelling table.

        Returns:
            A built `FactDatastore`.
        """
        sentences = fact_key_sentences(model.tokenizer, knowledge_graph, templates)
        if not sentences:
            raise ValueError(
                "The datastore needs at least one fact that a training template verbalizes. "
                f"Received: {knowledge_graph.name!r} with {len(knowledge_graph.triples)} triples"
            )
        entries = _entries(model, sentences, batch_size, verbose)
        table = None
        if kwargs.pop("match_subjects", True):
            table = spelling_table(subject_spellings(model.tokenizer, knowledge_graph))
            kwargs.setdefault("context", DEFAULT_CONTEXT)
            kwargs.update(
                mention_table_size=len(table["check"]),
                max_mention_length=table["max_length"],
                mention_hash_bases=list(table["bases"]),
                num_entities=max(knowledge_graph.num_entities, 1),
            )
        datastore = cls(
            size=len(entries[1]),
            hidden_dim=model.hidden_dim,
            vocabulary_size=model.tokenizer.vocabulary_size,
            kg_fingerprint=knowledge_graph.fingerprint(),
            **kwargs,
        )
        datastore.build()
        datastore.assign(*entries, key_subjects=_key_subjects(sentences))
        if table is not None:
            datastore.assign_spellings(table)
        return datastore

    def refresh(self, model, knowledge_graph, templates, batch_size=256, verbose=0):
        """Recomputes the keys with `model`'s current weights (same facts, so the same size)."""
        check_fingerprint(self, knowledge_graph)
        sentences = fact_key_sentences(model.tokenizer, knowledge_graph, templates)
        entries = _entries(model, sentences, batch_size, verbose)
        if len(entries[1]) != self.size:
            raise ValueError(
                f"The templates give {len(entries[1])} keys but the datastore holds {self.size}: refresh with the "
                "templates it was built from."
            )
        self.assign(*entries)  # same facts, same subjects: `key_subjects` stay

    def assign(self, keys, values, followed=None, key_subjects=None):
        """Stores `keys` (normalized here), their next-token `values` and what each followed.

        `followed[i]` is the token before `values[i]` for a key inside a name
        and -1 for a name's first token (a key that votes at any query);
        all -1 when omitted. `key_subjects[i]` is the entity id of the
        subject of the fact key `i` comes from (kept when omitted; -1, none,
        on a new layer; only a datastore with a spelling table has them).
        """
        keys = np.asarray(keys, "float32")
        keys = keys / np.maximum(np.linalg.norm(keys, axis=-1, keepdims=True), 1e-12)
        self.keys.assign(keys)
        self.values.assign(np.asarray(values, "int32"))
        self.followed.assign(np.full(len(keys), -1, "int32") if followed is None else np.asarray(followed, "int32"))
        if self.mention_table_size and key_subjects is not None:
            self.key_subjects.assign(np.asarray(key_subjects, "int32"))

    def assign_spellings(self, table):
        """Stores the subject spelling table `spelling_table` made (its size must be `mention_table_size`)."""
        self.mention_check.assign(table["check"])
        self.mention_length.assign(table["length"])
        self.mention_subject.assign(table["subject"])

    def build(self, input_shape=None):
        self.keys = self.add_weight(
            name="keys", shape=(self.size, self.hidden_dim), initializer="zeros", trainable=False, dtype="float32"
        )
        self.values = self.add_weight(
            name="values", shape=(self.size,), initializer="zeros", trainable=False, dtype="int32"
        )
        # -1: open to any query, until `assign` says which keys continue a name.
        self.followed = self.add_weight(
            name="followed", shape=(self.size,), initializer=keras.initializers.Constant(-1), trainable=False,
            dtype="int32",
        )
        # Only with a spelling table, so that a datastore saved before subject matching still loads.
        if self.mention_table_size:
            self.key_subjects = self.add_weight(
                name="key_subjects", shape=(self.size,), initializer=keras.initializers.Constant(-1),
                trainable=False, dtype="int32",
            )
            self.mention_check, self.mention_length, self.mention_subject = (
                self.add_weight(name=f"mention_{name}", shape=(self.mention_table_size,), initializer="zeros",
                                trainable=False, dtype="int32")
                for name in ("check", "length", "subject")
            )

    def call(self, inputs):
        hidden_states, logits, token_windows = inputs
        if len(token_windows.shape) == 2:  # the positions' own tokens only: no context to read
            token_windows = token_windows[..., None]
        token_ids = token_windows[..., -1]
        queries = keras.ops.cast(hidden_states, "float32")
        queries = queries / keras.ops.maximum(keras.ops.norm(queries, axis=-1, keepdims=True), 1e-12)
        similarities = keras.ops.einsum("btd,nd->btn", queries, self.keys)
        # A key inside a name votes only after the token it followed (cosines
        # lie in [-1, 1], so subtracting 8 puts it below every open key, even
        # one of another subject after the subject bonus below).
        followed = self.followed[None, None, :]
        open_keys = keras.ops.logical_or(followed < 0, followed == keras.ops.cast(token_ids, "int32")[..., None])
        similarities = keras.ops.where(open_keys, similarities, similarities - 8.0)
        if self.mention_table_size:
            # Keys of the subject the tokens name get +2, above every other
            # open key (cosines lie in [-1, 1]); among them the hidden state
            # still picks the relation.
            subjects = self.named_subjects(token_windows)[..., None]
            named = keras.ops.logical_and(subjects >= 0, self.key_subjects[None, None, :] == subjects)
            similarities = keras.ops.where(named, similarities + 2.0, similarities)
        nearest, indices = keras.ops.top_k(similarities, k=min(self.top_k, self.size))
        weights = keras.ops.softmax(nearest / self.temperature, axis=-1)
        tokens = keras.ops.take(keras.ops.cast(self.values, "int32"), indices, axis=0)
        votes = keras.ops.one_hot(tokens, self.vocabulary_size, dtype="float32") * weights[..., None]
        neighbours = keras.ops.sum(votes, axis=-2)
        model = keras.ops.softmax(keras.ops.cast(logits, "float32"), axis=-1)
        mixed = self.interpolation * neighbours + (1.0 - self.interpolation) * model
        return keras.ops.log(keras.ops.maximum(mixed, _SMALLEST_PROBABILITY))

    def named_subjects(self, token_windows):
        """The entity id of the subject each window names first, int32 `(batch, sequence)`; -1 where none."""
        return first_subject(
            token_windows,
            (self.mention_check, self.mention_length, self.mention_subject),
            self.mention_hash_bases,
            self.max_mention_length,
            self.num_entities,
        )

    def check_knowledge_graph(self, knowledge_graph):
        """Raises `kfine.errors.ModelError` unless `knowledge_graph` is the graph the keys came from."""
        check_fingerprint(self, knowledge_graph)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1])

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(self.compute_output_shape([x.shape for x in inputs]), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "size": self.size,
                "hidden_dim": self.hidden_dim,
                "vocabulary_size": self.vocabulary_size,
                "top_k": self.top_k,
                "temperature": self.temperature,
                "interpolation": self.interpolation,
                "kg_fingerprint": self.kg_fingerprint,
                "context": self.context,
                "mention_table_size": self.mention_table_size,
                "max_mention_length": self.max_mention_length,
                "mention_hash_bases": self.mention_hash_bases,
                "num_entities": self.num_entities,
            }
        )
        return config


def fact_key_sentences(tokenizer, knowledge_graph, templates):
    """Returns `[(token_ids, first_key, subject_id)]`, one per (fact, training template).

    `token_ids` is the sentence with `[BOS]` and `[EOS]`; the positions
    `j >= first_key` are the object's name tokens and the rest of the
    sentence, `[EOS]` included, each predicted from the hidden state at
    `j - 1`. `subject_id` is the fact's subject in `knowledge_graph`.
    """
    statements = Verbalizer(templates).statements(knowledge_graph.triples)
    # One tokenizer call per list: one call per sentence costs ~1000x more.
    first_keys = map(len, tokenizer.encode_batch([statement.prompt for statement in statements]))
    rows = tokenizer.encode_batch([statement.sentence for statement in statements], add_eos=True)
    subject_ids = [knowledge_graph.entity_id(statement.subject) for statement in statements]
    return list(zip(rows, first_keys, subject_ids))


def _key_subjects(sentences):
    """The entity id of each key's subject, in the order `_entries` lays the keys out."""
    return np.concatenate([np.full(len(ids) - first_key, subject, "int32") for ids, first_key, subject in sentences])


def _entries(model, sentences, batch_size, verbose):
    """Runs `model.hidden_states` over `sentences` (sorted by length, to pad little).

    Returns `(keys, values, followed)` as `FactDatastore.assign` takes them.
    """
    order = sorted(range(len(sentences)), key=lambda index: len(sentences[index][0]))
    keys, values, followed = [None] * len(sentences), [None] * len(sentences), [None] * len(sentences)
    progress = keras.utils.Progbar(len(sentences), verbose=verbose, unit_name="sentence")
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        length = max(len(sentences[index][0]) for index in batch)
        token_ids = np.zeros((len(batch), length), "int32")
        for row, index in enumerate(batch):
            token_ids[row, : len(sentences[index][0])] = sentences[index][0]
        hidden_states = keras.ops.convert_to_numpy(model.hidden_states(token_ids))
        for row, index in enumerate(batch):
            ids, first_key, _ = sentences[index]
            keys[index] = hidden_states[row, first_key - 1 : len(ids) - 1]
            values[index] = ids[first_key:]
            followed[index] = [-1, *ids[first_key : len(ids) - 1]]
        progress.add(len(batch))
    return np.concatenate(keys), np.concatenate(values), np.concatenate(followed)
