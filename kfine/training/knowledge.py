"""Knowledge-enhanced fine-tuning: KG injection plus an entity head that copies names.

The pretrained LM's hidden states pass through a `KnowledgeInjectionLayer`
(the subject linked by the `EntityLinker` is carried to the answer slot, where
a memory read over its KG facts brings the object's representation) and then
through the LM head. A fact pointer (KGLM: pick the parent entity's fact,
then copy its object) scores the carried subject's KG facts at every
position; generation copies the chosen object's name tokens whole, so
multi-token names ("Andorra la Vella") come out intact. The pointer scores
facts by relation only, never by subject identity, so what it learns on seen
subjects transfers to subjects that never appear in text.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from kfine.callbacks import KnowledgeGraphProjector
from kfine.knowledge.compositions import CompositionParser, composition_templates
from kfine.knowledge.edits import triple_ids_in
from kfine.knowledge.linker import EntityLinker
from kfine.knowledge.templates import Templates
from kfine.layers import KnowledgeInjectionLayer
from kfine.models.generation import Generator
from kfine.models.loading import load_model
from kfine.models.optimizer import build_optimizer
from kfine.training.mle import next_token_loss
from kfine.training.resume import backup_callbacks

QUICK_EPOCHS = 8
FULL_EPOCHS = 30


@keras.saving.register_keras_serializable(package="kfine")
class KnowledgeLanguageModel(keras.Model):
    """A pretrained `CausalLanguageModel` with KG injection and an entity head.

    Args:
        language_model: `CausalLanguageModel`. Supplies hidden states and the LM head.
        injection: `KnowledgeInjectionLayer` built on the KG the model may use.
        abstains: bool. Column 0 of `fact_scores` is a learned "no fact"
            score, so the pointer can decline every fact (the subject has
            none for the relation asked) and the LM answers alone. The
            pointer's "no fact" probability is also projected into the LM
            head's input, so the LM can learn to say that it does not know
            exactly where the pointer finds nothing to copy.

    Call arguments:
        inputs: dict with `token_ids` `(batch, sequence)` and `entity_ids`
            `(batch, sequence)` (the `EntityLinker`'s per-token ids).

    Returns:
        dict with `logits` `(batch, sequence, vocabulary)` and `fact_scores`
        `(batch, sequence, 1 + max_degree)`: at each position, the score of
        each fact slot of the carried entity (empty slots get -1e9; column 0
        too, so it can serve as the "no target" class of the loss, unless
        the model `abstains`).
    """

    def __init__(self, language_model, injection, abstains=False, **kwargs):
        super().__init__(**kwargs)
        self.language_model = language_model
        self.injection = injection
        self.abstains = abstains
        self.fact_query = keras.layers.Dense(injection.entity_dim, name="fact_query")
        self.no_fact = keras.layers.Dense(1, name="no_fact") if abstains else None
        # The LM head reads the injection's output: `[h, k]` in "concat" mode, the hidden size otherwise.
        feature_dim = language_model.hidden_dim + (2 * injection.entity_dim if injection.mode == "concat" else 0)
        self.no_fact_projection = keras.layers.Dense(feature_dim, use_bias=False,
                                                     name="no_fact_projection") if abstains else None

    def fact_slots(self, entity_ids):
        """`(rows, relations, objects)` of the entity carried to each position."""
        rows = self.injection.entity_rows(entity_ids)
        relations = keras.ops.take(self.injection.fact_relations, rows, axis=0)
        objects = keras.ops.take(self.injection.fact_objects, rows, axis=0)
        return rows, relations, objects

    @property
    def tokenizer(self):
        return self.language_model.tokenizer

    @property
    def sequence_length(self):
        return self.language_model.sequence_length

    def call(self, inputs, training=False):
        hidden_states = self.language_model.hidden_states(inputs["token_ids"], training=training)
        features = self.injection([hidden_states, inputs["entity_ids"]], training=training)
        _, relations, objects = self.fact_slots(inputs["entity_ids"])
        keys = keras.ops.take(self.injection.encoder.relation_embeddings, relations, axis=0)
        scores = keras.ops.einsum("btd,btkd->btk", self.fact_query(features), keys)
        scores = keras.ops.where(objects > 0, keras.ops.cast(scores, "float32"), -1e9)
        if self.abstains:
            no_target = keras.ops.cast(self.no_fact(features), "float32")
        else:
            no_target = keras.ops.full_like(scores[:, :, :1], -1e9)
        fact_scores = keras.ops.concatenate([no_target, scores], axis=-1)
        if self.abstains:
            # P(no fact) tells the LM whether its KG holds an answer (an entity without facts for the
            # relation, or no entity at all); the pointer learns it from its own loss alone.
            no_fact = keras.ops.stop_gradient(keras.ops.softmax(fact_scores, axis=-1)[..., :1])
            features = features + self.no_fact_projection(keras.ops.cast(no_fact, features.dtype))
        return {"logits": self.language_model.head(features), "fact_scores": fact_scores}

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "language_model": keras.saving.serialize_keras_object(self.language_model),
                "injection": keras.saving.serialize_keras_object(self.injection),
                "abstains": self.abstains,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        language_model = keras.saving.deserialize_keras_object(config.pop("language_model"))
        injection = keras.saving.deserialize_keras_object(config.pop("injection"))
        return cls(language_model, injection, **config)


def knowledge_examples(task, linker, tokenizer, fact_tables):
    """Training arrays from the finetune facts, one row per (fact, training template).

    Returns:
        dict of int32 arrays `(rows, length)`: `token_ids` (`[BOS]` sentence
        `[EOS]`), `entity_ids` (linker output), `targets` (next tokens) and
        `fact_targets` (at the last prompt token, 1 + the fact slot of the
        verbalized fact in its subject's row of `fact_tables`; else 0).
    """
    graph = linker.knowledge_graph
    relation_table, object_table = fact_tables
    statements, slots = [], []
    for statement in task.verbalizer.statements(task.finetune_triples):
        row = graph.entity_id(statement.subject) + 1
        match = (relation_table[row] == graph.relation_id(statement.relation)) & (
            object_table[row] == graph.entity_id(statement.object) + 1)
        if match.any():  # else the fact was cut by max_facts
            statements.append(statement)
            slots.append(int(np.argmax(match)) + 1)
    return example_arrays(linker, tokenizer, [statement.sentence for statement in statements],
                          [statement.prompt for statement in statements], slots)


def example_arrays(linker, tokenizer, sentences, prompts, slots):
    """`knowledge_examples`' arrays for given sentences, the prompts they start with, and fact targets."""
    rows = tokenizer.encode_batch(sentences, add_eos=True)
    prompt_lengths = [len(row) for row in tokenizer.encode_batch(prompts)]
    length = max(len(row) for row in rows) - 1
    arrays = {name: np.zeros((len(rows), length), "int32")
              for name in ("token_ids", "entity_ids", "targets", "fact_targets")}
    for index, row in enumerate(rows):
        entity_row = linker.entity_ids_per_token(row)
        arrays["token_ids"][index, : len(row) - 1] = row[:-1]
        arrays["entity_ids"][index, : len(row) - 1] = entity_row[:-1]
        arrays["targets"][index, : len(row) - 1] = row[1:]
        # The last prompt token is where the pointer must pick the fact.
        arrays["fact_targets"][index, prompt_lengths[index] - 1] = slots[index]
    return arrays


class KnowledgeGenerator(Generator):
    """Generation that copies the object of the fact the pointer picks at the prompt's end.

    At the end of each prompt the fact pointer scores the linked subject's
    facts; the chosen object's name tokens are appended whole, and the
    sentence ends with the training-template ending (text after `{object}`)
    the LM scores highest, so an unfamiliar subject cannot derail the words
    after the answer. Prompts without a linked subject that has facts are
    completed by the LM alone.

    A two-hop question asked in one of the templates' composition wordings
    (`_compositions`, see `kfine.knowledge.compositions`; "The capital of the
    country Lyon lies in is") is answered hop by hop: the composition
    template says which relations, the model's pointer answers the inner
    question ("Lyon is a city in" -> France) and then the outer one about
    that answer ("The capital of France is" -> Paris), each asked in the
    relation's first training template. Each hop is the model's own pick
    over its KG, so an error in either hop is the answer's error, and the
    answer's confidence is the product of the two picks' probabilities.

    `update_knowledge(kg)` swaps the facts the model reads for an edited KG's,
    with no gradient step.

    Args:
        model: `KnowledgeLanguageModel`.
        linker: `EntityLinker` over the model's KG, with the model's tokenizer.
        endings: list of str. Sentence endings allowed after a copied entity.
        templates: `Templates` or None. Their compositions are answered hop
            by hop; None: no composition wordings.
    """

    def __init__(self, model, linker, endings=(".",), templates=None, **kwargs):
        super().__init__(model, model.tokenizer, **kwargs)
        self.linker = linker
        self.templates = templates
        self._compositions = CompositionParser(
            composition_templates(templates, linker.knowledge_graph) if templates is not None else {})
        self.endings = sorted(set(endings))
        eos = [self.tokenizer.eos_id]
        self._endings = [row + eos for row in self.tokenizer.encode_batch(self.endings, add_bos=False)]
        graph = linker.knowledge_graph
        # Copied after the prompt's last word, so spelled as a sentence spells them there ("ĠParis").
        self._name_ids = self.tokenizer.encode_in_context(graph.entities)
        # Entity names are whole words: right after one, a word piece that
        # continues a word would glue onto it ("South Korea" + "##d").
        continues_word = np.zeros(self.tokenizer.vocabulary_size, bool)
        continues_word[list(self.tokenizer.word_continuation_ids())] = True
        self._continues_word = tf.constant(continues_word)

    def sequence_logits(self, token_ids):
        entity_ids = self.linker.entity_ids_tensor(token_ids)
        return self.model({"token_ids": token_ids, "entity_ids": entity_ids}, training=False)["logits"]

    def next_token_logits(self, token_ids, token_features, index):
        outputs = self.model({"token_ids": token_ids, "entity_ids": token_features}, training=False)
        logits = outputs["logits"][:, index - 1, :]
        after_entity = token_features[:, index - 1] > 0
        return tf.where(after_entity[:, None] & self._continues_word[None, :], -1e9, logits)

    def pick_entities(self, rows, entity_rows, allowed=None):
        """`(picked, probabilities)`: the entity id (0-based) the fact pointer picks after each row,
        or -1 if none, and the pointer's probability of that choice.

        With `allowed` (an `AllowedAnswers`), facts whose object is not
        allowed cannot be picked.

        The probability is the softmax over the row's fact slots and column 0
        ("no fact"; never chosen by a model that scores it -1e9), so a
        pointer torn between facts is less sure of the one it copies.
        """
        picked, probabilities = [], []
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]
            inputs = _padded(batch, entity_rows[start : start + self.batch_size])
            last = np.array([len(row) - 1 for row in batch])
            scores = tf.gather(self.model(inputs, training=False)["fact_scores"], last, axis=1, batch_dims=1)
            scores = scores.numpy().astype("float64")
            _, _, objects = self.model.fact_slots(inputs["entity_ids"])
            objects = tf.gather(objects, last, axis=1, batch_dims=1).numpy()
            if allowed is not None:
                rows_allowed = allowed.entities[start : start + len(batch)]
                permitted = np.take_along_axis(rows_allowed, np.maximum(objects - 1, 0), axis=1)
                objects = np.where(permitted, objects, 0)
                scores[:, 1:] = np.where(objects > 0, scores[:, 1:], -np.inf)
            choice = np.argmax(scores, axis=-1)
            shifted = np.exp(scores - scores[np.arange(len(batch)), choice][:, None])
            probabilities.extend((1.0 / shifted.sum(axis=-1)).tolist())
            chosen = np.where(choice > 0, objects[np.arange(len(batch)), np.maximum(choice - 1, 0)], 0)
            picked.extend((chosen - 1).tolist())  # "no fact" or an empty slot (0) gives -1: nothing to copy
        return picked, probabilities

    def update_knowledge(self, knowledge_graph):
        """Answers from `knowledge_graph` from now on, with no gradient step.

        The injection layer's fact tables and KG encoder edges are rewritten
        (`KnowledgeInjectionLayer.update_facts`); the linker and every weight
        stay. `knowledge_graph` may only use the entities and relations of
        the KG the model was trained with, and keep the number of facts of
        each relation, as an edit that replaces objects does.

        Raises:
            KfineError: an entity or relation the model has no row for.
        """
        self.model.injection.update_facts(triple_ids_in(self.linker.knowledge_graph, knowledge_graph))

    def generate_ids(self, prompts, max_new_tokens=16, allowed=None):
        return self._generate(prompts, max_new_tokens, allowed)[0]

    def generate_with_confidence(self, prompts, max_new_tokens=16, allowed=None):
        """`(texts, confidences)`: a copied answer's confidence is the pointer's probability of its
        fact; an answer the LM writes alone gets its sentence probability."""
        completions, rows, pointer_probabilities = self._generate(prompts, max_new_tokens, allowed)
        uncopied = [index for index, probability in enumerate(pointer_probabilities) if probability is None]
        confidences = list(pointer_probabilities)
        sentence = self.sentence_confidence([rows[i] for i in uncopied], [completions[i] for i in uncopied],
                                            max_new_tokens)
        for index, confidence in zip(uncopied, sentence):
            confidences[index] = confidence
        return self.tokenizer.decode_batch(completions), confidences

    def _generate(self, prompts, max_new_tokens, allowed):
        """`(completions, prompt rows, pointer probability or None per row the LM completed alone)`."""
        prompts = list(prompts)
        rows = self.tokenizer.encode_batch(prompts)
        answers = self._composed_answers(prompts) if allowed is None else {}
        rest = [index for index in range(len(prompts)) if index not in answers]
        if rest:
            completions, probabilities = self._single_hop_ids([rows[index] for index in rest], max_new_tokens,
                                                              allowed)
            answers.update(zip(rest, zip(completions, probabilities)))
        return ([answers[index][0] for index in range(len(prompts))], rows,
                [answers[index][1] for index in range(len(prompts))])

    def _composed_answers(self, prompts):
        """`{index: (completion ids, probability)}` for the prompts in a composition wording whose two hops
        both pick a fact."""
        parsed = {index: self._compositions.parse(prompt) for index, prompt in enumerate(prompts)}
        parsed = {index: parts for index, parts in parsed.items() if parts is not None}
        names = self.linker.knowledge_graph.entities
        middles, middle_probabilities = self._hop([(inner, subject) for inner, _, subject, _ in parsed.values()])
        answers = iter(zip(*self._hop([(outer, names[middle]) for (_, outer, _, _), middle
                                       in zip(parsed.values(), middles) if middle >= 0])))
        composed = {}
        for (index, (_, _, _, suffix)), middle, middle_probability in zip(parsed.items(), middles,
                                                                         middle_probabilities):
            answer, probability = next(answers) if middle >= 0 else (-1, 0.0)
            if answer >= 0:
                ending = self.tokenizer.encode(suffix, add_bos=False) if suffix else []
                composed[index] = (self._name_ids[answer] + ending, middle_probability * probability)
        return composed

    def _hop(self, questions):
        """`(picked, probabilities)` of the pointer for each `(relation, subject)`, asked in the relation's first
        template."""
        if not questions:
            return [], []
        prompts = [Templates.prompt(self.templates.training_templates(relation)[0], subject)
                   for relation, subject in questions]
        rows = self.tokenizer.encode_batch(prompts)
        return self.pick_entities(rows, [self.linker.entity_ids_per_token(row) for row in rows])

    def _single_hop_ids(self, rows, max_new_tokens, allowed):
        """`(completions, pointer probability or None per row)` for prompt rows asked in one hop."""
        entity_rows = [self.linker.entity_ids_per_token(row) for row in rows]
        picked, probabilities = self.pick_entities(rows, entity_rows, allowed)
        completions = [None] * len(rows)
        copied = [index for index, entity in enumerate(picked) if entity >= 0]
        uncopied = [index for index, entity in enumerate(picked) if entity < 0]
        if uncopied:
            rest = self.complete_ids([rows[i] for i in uncopied], max_new_tokens, [entity_rows[i] for i in uncopied],
                                     allowed.take(uncopied) if allowed is not None else None)
            for index, tail in zip(uncopied, rest):
                completions[index] = tail
        for index, ending in zip(copied, self._best_endings(rows, entity_rows, picked, copied)):
            completions[index] = self._name_ids[picked[index]] + ending[:-1]  # [EOS] dropped
        return completions, [probabilities[i] if picked[i] >= 0 else None for i in range(len(rows))]

    def _best_endings(self, rows, entity_rows, picked, indices):
        """For each row in `indices`, the allowed ending the LM finds most likely after the copied name."""
        candidates = []
        for index in indices:
            name = self._name_ids[picked[index]]
            prefix = rows[index] + name
            prefix_entities = entity_rows[index] + [picked[index] + 1] * len(name)
            for ending in self._endings:
                candidates.append((prefix + ending, prefix_entities + [0] * len(ending), len(prefix)))
        scores = []
        for start in range(0, len(candidates), self.batch_size):
            batch = candidates[start : start + self.batch_size]
            inputs = _padded([tokens for tokens, _, _ in batch], [entities for _, entities, _ in batch])
            logits = self.model(inputs, training=False)["logits"]
            log_probs = tf.nn.log_softmax(logits, axis=-1).numpy()
            for row, (tokens, _, begin) in enumerate(batch):
                positions = np.arange(begin, len(tokens))
                scores.append(float(log_probs[row, positions - 1, np.array(tokens)[positions]].sum()))
        per_row = len(self._endings)
        return [self._endings[int(np.argmax(scores[i * per_row : (i + 1) * per_row]))] for i in range(len(indices))]


def _padded(token_rows, entity_rows):
    """Right-pads token and entity-id rows (of equal lengths) into the model's input dict."""
    return {"token_ids": keras.utils.pad_sequences(token_rows, padding="post", dtype="int32"),
            "entity_ids": keras.utils.pad_sequences(entity_rows, padding="post", dtype="int32")}


def build_knowledge_model(language_model, knowledge_graph, mode="gated", embeddings_regularizer=None,
                          model_class=KnowledgeLanguageModel, **model_kwargs):
    injection = KnowledgeInjectionLayer(knowledge_graph, mode=mode, entity_head=False,
                                        embeddings_regularizer=embeddings_regularizer, name="knowledge_injection")
    return model_class(language_model, injection, name="knowledge_language_model", **model_kwargs)


def fine_tune_knowledge(task, pretrained, seed, log_dir, quick=False, verbose=0, init_embeddings=None):
    """Fine-tunes LM + KG injection + entity head on the finetune facts.

    `init_embeddings`: a `kfine kg embed` directory whose entity and relation
    embeddings initialize the KG encoder (default: random).
    """
    return train_knowledge_model(task, pretrained, seed, log_dir, quick=quick, verbose=verbose,
                                 init_embeddings=init_embeddings)


def train_knowledge_model(task, pretrained, seed, log_dir, quick=False, verbose=0, make_model=build_knowledge_model,
                          extra_inputs=None, init_embeddings=None, graph=None):
    """The `knowledge` method's training, with hooks for methods built on it.

    Args:
        make_model: callable `(language_model, knowledge_graph) -> KnowledgeLanguageModel`.
        extra_inputs: None or callable `(model, arrays) -> dict` of more
            training inputs (`arrays` as `knowledge_examples` returns them).
        init_embeddings: str or None. A `kfine kg embed` directory whose
            entity and relation embeddings initialize the KG encoder.
        graph: `KnowledgeGraph` or None. The KG the model reads (default
            `task.model_graph`; a method may give it less, never more).

    Returns:
        A `KnowledgeGenerator`.
    """
    keras.utils.set_random_seed(seed)
    language_model = load_model(pretrained)
    graph = task.model_graph if graph is None else graph
    linker = EntityLinker(graph, language_model.tokenizer)
    model = make_model(language_model, graph)
    model.injection.build(((None, None, language_model.hidden_dim), (None, None)))
    if init_embeddings is not None:
        from kfine.graph.embeddings import initialize_encoder

        initialize_encoder(model.injection.encoder, graph, init_embeddings)
    fact_tables = (model.injection.fact_relations.numpy(), model.injection.fact_objects.numpy())
    arrays = knowledge_examples(task, linker, language_model.tokenizer, fact_tables)
    inputs = {"token_ids": arrays["token_ids"], "entity_ids": arrays["entity_ids"]}
    if extra_inputs is not None:
        inputs.update(extra_inputs(model, arrays))
    targets = {"logits": arrays["targets"], "fact_scores": arrays["fact_targets"]}
    model({name: array[:1] for name, array in inputs.items()})  # built, so a backup can be restored into it
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=2e-3, weight_decay=0.01),
        loss={"logits": next_token_loss(), "fact_scores": next_token_loss()},
    )
    build_optimizer(model)
    model.fit(
        inputs,
        targets,
        batch_size=32,
        epochs=QUICK_EPOCHS if quick else FULL_EPOCHS,
        shuffle=True,
        callbacks=[
            keras.callbacks.TensorBoard(os.path.join(log_dir, "fit")),
            # In the run folder the TensorBoard callback writes, so the projector tab lists it.
            KnowledgeGraphProjector(os.path.join(log_dir, "fit", "train"), model.injection.encoder, graph),
            *backup_callbacks("fit"),
        ],
        verbose=verbose,
    )
    endings = [Templates.suffix(template) for relation in task.templates.relations
               for template in task.templates.training_templates(relation)]
    return KnowledgeGenerator(model, linker, endings=endings, templates=task.templates)
