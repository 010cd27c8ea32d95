"""Training data of `AdversarialFineTuner`: fact sentences as reals, corrupted facts as fakes, the KG's answers."""

import keras
import numpy as np
import tensorflow as tf

from kfine.knowledge.templates import Templates


def adversarial_examples(task, tokenizer, answer_length, sequence_length, corruptions=4, seed=0,
                         rollout_triples=None):
    """Training arrays for `AdversarialFineTuner`: one row per (fact rolled out on, training template).

    Args:
        task: `FactTask`. Corruptions draw wrong objects from
            `task.model_graph`, and `knowledge_ids` spell its objects.
        tokenizer: `WordPieceTokenizer`.
        answer_length: int. Generated tokens after each prompt.
        sequence_length: int. The generator's longest input; longer rows are cut.
        corruptions: int. Corrupted sentences per row (0: none).
        seed: int. Seeds the choice of wrong objects and of MLE sentences.
        rollout_triples: list of `(subject, relation, object)` or None. The
            facts whose prompts the generator continues (e.g. the probe
            slice's, `kfine.training.probe`); None: the finetune facts, whose
            sentences are then the MLE term's too. Given, every row also
            carries one finetune sentence (drawn seeded, each about equally
            often) for the MLE term, so it trains on the training text alone.

    Returns:
        dict of arrays: `token_ids` (rows, width) int32, `prompt_length`
        (rows,) int32, `knowledge_ids` (rows, objects, answer_length) int32
        (the token ids of every KG object of the row's `(subject, relation)`
        after its prompt, cut to `answer_length`, 0-padded: what
        `knowledge_match` reads), with rollout triples `mle_ids` (rows, width)
        int32 and, with corruptions, `corrupted_ids` (rows, corruptions,
        width) int32 and `corruption_weight` (rows,) float32 (0 where the
        relation has no other object to swap in).
    """
    trained = task.verbalizer.statements(task.finetune_triples)
    statements = trained if rollout_triples is None else task.verbalizer.statements(rollout_triples)
    if not statements:
        raise ValueError("`rollout_triples` must hold at least one fact. Received: no facts")
    rows = tokenizer.encode_batch([statement.sentence for statement in statements], add_eos=True)
    prompts = tokenizer.encode_batch([statement.prompt for statement in statements])
    prompt_lengths = np.array([len(row) for row in prompts], "int32")
    mle_rows = []
    if rollout_triples is not None:
        order = np.random.default_rng([seed, 1]).permutation(np.resize(np.arange(len(trained)), len(rows)))
        mle_rows = tokenizer.encode_batch([trained[index].sentence for index in order], add_eos=True)
    longest = max(len(row) for row in rows + mle_rows)
    width = min(sequence_length, max(longest, int(prompt_lengths.max()) + answer_length))
    keep = np.flatnonzero(prompt_lengths + answer_length <= width)

    def to_array(token_rows):
        return keras.utils.pad_sequences(token_rows, maxlen=width, padding="post", truncating="post", dtype="int32")

    examples = {"token_ids": to_array(rows)[keep], "prompt_length": prompt_lengths[keep],
                "knowledge_ids": _object_ids(statements, prompts, task.model_graph, tokenizer, answer_length)[keep]}
    if mle_rows:
        examples["mle_ids"] = to_array(mle_rows)[keep]
    if corruptions:
        corrupted, weights = _corrupted_sentences(statements, task.model_graph, corruptions, seed)
        corrupted_rows = to_array(tokenizer.encode_batch(corrupted, add_eos=True))
        examples["corrupted_ids"] = corrupted_rows.reshape(len(rows), corruptions, width)[keep]
        examples["corruption_weight"] = np.array(weights, "float32")[keep]
    return examples


def _object_ids(statements, prompts, graph, tokenizer, answer_length):
    """`(rows, objects, answer_length)` int32: each KG object's tokens after each row's prompt (0-padded).

    The object is tokenized in its sentence (after the prompt), so the ids
    are those a correct completion generates.
    """
    objects = [sorted(graph.objects(statement.subject, statement.relation)) for statement in statements]
    texts = []
    for statement, answers in zip(statements, objects):
        for answer in answers:
            sentence = Templates.fill(statement.template, statement.subject, answer)
            start = sentence.find(answer, len(statement.prompt))
            texts.append(sentence[: start + len(answer)])
    encoded = iter(tokenizer.encode_batch(texts))
    ids = np.zeros((len(statements), max(1, max(len(answers) for answers in objects)), answer_length), "int32")
    for row, (prompt, answers) in enumerate(zip(prompts, objects)):
        for column in range(len(answers)):
            tokens = next(encoded)
            if tokens[: len(prompt)] == prompt:  # else the object merged into the prompt's last token
                answer = tokens[len(prompt):][:answer_length]
                ids[row, column, : len(answer)] = answer
    return ids


def _corrupted_sentences(statements, graph, corruptions, seed):
    """`corruptions` sentences per statement with another object of the relation's range, and a weight each.

    Returns:
        `(sentences, weights)`: the weight is 0 (and the sentences repeat the
        true one) where the relation has no other object to swap in.
    """
    rng = np.random.default_rng(seed)
    ranges = {}
    sentences, weights = [], []
    for statement in statements:
        if statement.relation not in ranges:
            ranges[statement.relation] = sorted(graph.relation_range(statement.relation))
        wrong = sorted(set(ranges[statement.relation]) - graph.objects(statement.subject, statement.relation))
        picks = rng.choice(wrong, size=corruptions) if wrong else [statement.object] * corruptions
        sentences.extend(Templates.fill(statement.template, statement.subject, pick) for pick in picks)
        weights.append(1.0 if wrong else 0.0)
    return sentences, weights


def adversarial_dataset(examples, batch_size, seed=0):
    """A shuffled `tf.data.Dataset` of full batches (static shapes for XLA)."""
    rows = len(examples["token_ids"])
    batch_size = min(batch_size, rows)
    dataset = tf.data.Dataset.from_tensor_slices(examples).shuffle(rows, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
