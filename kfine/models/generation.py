"""Text generation with keras-hub samplers (greedy, top-k, top-p)."""

import keras_hub
import numpy as np
import tensorflow as tf

from kfine.errors import KfineError

SAMPLERS = ("greedy", "top_k", "top_p")
# Tokens that end the sentence whose probability is an answer's confidence.
_SENTENCE_ENDS = (".", "!", "?")


def make_sampler(name="greedy", k=5, p=0.9, seed=None):
    """Returns the keras-hub sampler called `name` ("greedy", "top_k" or "top_p")."""
    if name == "greedy":
        return keras_hub.samplers.GreedySampler()
    if name == "top_k":
        return keras_hub.samplers.TopKSampler(k=k, seed=seed)
    if name == "top_p":
        return keras_hub.samplers.TopPSampler(p=p, seed=seed)
    raise KfineError(f"--sampler must be one of {', '.join(SAMPLERS)}. Received: {name!r}")


class Generator:
    """Completes batches of prompts with a causal LM and a keras-hub sampler.

    Prompts are right-padded into fixed-size buffers (batch size and length
    rounded up to buckets) so the compiled loop is traced once per bucket, not
    once per call. The sampler's loop runs inside one `tf.function`; each step
    re-reads the whole buffer (no key/value cache), which is cheap at the
    sequence lengths of fact completion.

    Args:
        model: a `CausalLanguageModel` (or any Keras model mapping int32 token
            ids `(batch, sequence)` to logits `(batch, sequence, vocab)`).
        tokenizer: the model's `WordPieceTokenizer`.
        sampler: a keras-hub `Sampler` or one of "greedy", "top_k", "top_p".
        logits_processor: optional callable `(token_ids, index, logits) ->
            logits` applied before sampling (e.g. a fixed vocabulary mask).
            Per-prompt constraints go to `generate_ids(..., allowed=...)`.
        batch_size: int. Prompts per compiled call.
        jit_compile: bool. Compile the loop with XLA.
    """

    def __init__(self, model, tokenizer, sampler="greedy", logits_processor=None, batch_size=128, jit_compile=False):
        self.model = model
        self.tokenizer = tokenizer
        self.sampler = make_sampler(sampler) if isinstance(sampler, str) else sampler
        self.logits_processor = logits_processor
        self.batch_size = batch_size
        self.sequence_limit = getattr(model, "sequence_length", None) or 1024
        self._loop = tf.function(self._sample, jit_compile=jit_compile, reduce_retracing=True)

    def sequence_logits(self, token_ids):
        """Next-token logits at every position of a `(batch, sequence)` id tensor."""
        return self.model(token_ids, training=False)

    def next_token_logits(self, token_ids, token_features, index):
        """Logits of the token at `index` given the buffer (subclasses add inputs)."""
        del token_features  # plain language models read token ids only
        if hasattr(self.model, "next_token_logits"):
            return self.model.next_token_logits(token_ids, index)
        return self.model(token_ids, training=False)[:, index - 1, :]

    def _sample(self, token_ids, prompt_mask, index, token_features, allowed_names=None, trie=None):
        prompt_lengths = tf.reduce_sum(tf.cast(prompt_mask, tf.int32), axis=1)

        def next_logits(buffer, cache, step):
            logits = self.next_token_logits(buffer, token_features, step)
            if self.logits_processor is not None:
                logits = self.logits_processor(buffer, step, logits)
            if trie is not None:
                # The cache carries each row's trie node: the names it still agrees with.
                logits, cache = trie.constrain(buffer, step, logits, prompt_lengths, cache)
            return logits, None, cache

        return self.sampler(
            next=next_logits,
            prompt=token_ids,
            cache=allowed_names,
            index=index,
            mask=prompt_mask,
            stop_token_ids=[self.tokenizer.eos_id],
        )

    def generate_ids(self, prompts, max_new_tokens=16, allowed=None):
        """Returns, for each prompt, the list of generated token ids (EOS excluded).

        `allowed` (an `AllowedAnswers`, one row per prompt) restricts each
        prompt's answer to the entity names it allows (KG-constrained
        decoding; see `kfine.models.constrained_decoding`).
        """
        return self.complete_ids(self.tokenizer.encode_batch(list(prompts)), max_new_tokens, allowed=allowed)

    def complete_ids(self, rows, max_new_tokens, feature_rows=None, allowed=None):
        """Continues token-id rows; `feature_rows` are optional per-token ints
        (e.g. linked entity ids) passed to `next_token_logits`; `allowed` as
        in `generate_ids`."""
        completions = []
        for start in range(0, len(rows), self.batch_size):
            end = start + self.batch_size
            features = feature_rows[start:end] if feature_rows is not None else None
            batch_allowed = allowed.take(range(start, min(end, len(rows)))) if allowed is not None else None
            completions.extend(self._generate_batch(rows[start:end], max_new_tokens, features, batch_allowed))
        return completions

    def generate(self, prompts, max_new_tokens=16):
        """Returns the completion text of each prompt (the prompt itself excluded)."""
        # Checked before subclasses run the model on the prompts (positions past the limit do not exist).
        self._check_lengths([len(row) for row in self.tokenizer.encode_batch(list(prompts))])
        return self.tokenizer.decode_batch(self.generate_ids(prompts, max_new_tokens))

    def generate_with_confidence(self, prompts, max_new_tokens=16, allowed=None):
        """Returns `(texts, confidences)`: each prompt's completion and P(its answer is correct).

        The confidence is the model's probability of the completion up to the
        end of its first sentence (`sentence_confidence`). `allowed` as in
        `generate_ids`.
        """
        prompts = list(prompts)
        rows = self.tokenizer.encode_batch(prompts)
        self._check_lengths([len(row) for row in rows])
        completions = self.generate_ids(prompts, max_new_tokens, allowed=allowed)
        return self.tokenizer.decode_batch(completions), self.sentence_confidence(rows, completions, max_new_tokens)

    def sentence_confidence(self, rows, completions, max_new_tokens=16):
        """The probability of each completion's first sentence given its prompt row.

        The sentence runs to the first `.`, `!` or `?` token, or else to
        `[EOS]` (when generation stopped before `max_new_tokens`), or to the
        completion's end. Scored with `sequence_logits`, so subclasses that
        add inputs (linked entities) score with them.
        """
        ends = {self.tokenizer.token_to_id(mark) for mark in _SENTENCE_ENDS if mark in self.tokenizer.vocabulary}
        scored = []
        for row, completion in zip(rows, completions):
            stop = next((index + 1 for index, token in enumerate(completion) if token in ends), None)
            if stop is not None:
                sentence = completion[:stop]
            elif len(completion) < max_new_tokens:
                sentence = completion + [self.tokenizer.eos_id]
            else:
                sentence = list(completion)
            scored.append((list(row) + sentence, len(row)))
        confidences = []
        for start in range(0, len(scored), self.batch_size):
            batch = scored[start : start + self.batch_size]
            length = min(_round_up(max(len(tokens) for tokens, _ in batch), 8), self.sequence_limit)
            buffer = np.zeros((len(batch), length), "int32")
            for index, (tokens, _) in enumerate(batch):
                buffer[index, : len(tokens)] = tokens[:length]
            log_probs = tf.nn.log_softmax(tf.cast(self.sequence_logits(tf.constant(buffer)), "float32"), axis=-1)
            log_probs = log_probs.numpy()
            for index, (tokens, begin) in enumerate(batch):
                positions = np.arange(begin, min(len(tokens), length))
                total = log_probs[index, positions - 1, buffer[index, positions]].sum()
                confidences.append(float(np.exp(total)))
        return confidences

    def _check_lengths(self, lengths):
        if lengths and max(lengths) >= self.sequence_limit:
            raise KfineError(
                f"A prompt has {max(lengths)} tokens; this model reads at most "
                f"{self.sequence_limit - 1} plus the answer."
            )

    def _generate_batch(self, rows, max_new_tokens, feature_rows=None, allowed=None):
        lengths = [len(row) for row in rows]
        self._check_lengths(lengths)
        length = min(_round_up(max(lengths) + max_new_tokens, 8), self.sequence_limit)
        buffer = np.zeros((_round_up(len(rows), 8), length), dtype="int32")
        features = np.zeros_like(buffer)
        mask = np.zeros_like(buffer, dtype=bool)
        # Rows past the batch repeat the first prompt, so they reach [EOS]
        # with it and never keep the loop running.
        for row_index in range(len(buffer)):
            source = row_index if row_index < len(rows) else 0
            row = rows[source]
            buffer[row_index, : len(row)] = row
            mask[row_index, : len(row)] = True
            if feature_rows is not None:
                features[row_index, : len(row)] = feature_rows[source]
        arguments = [tf.constant(buffer), tf.constant(mask), tf.constant(min(lengths), tf.int32), tf.constant(features)]
        if allowed is not None:
            names = allowed.trie.name_mask(allowed, max_new_tokens)
            padding_rows = np.zeros(len(buffer) - len(rows), "int64")  # padding rows repeat the first prompt
            arguments += [tf.constant(np.concatenate([names, names[padding_rows]])), allowed.trie]
        output = self._loop(*arguments).numpy()
        completions = []
        for row_index, prompt_length in enumerate(lengths):
            generated = output[row_index, prompt_length : prompt_length + max_new_tokens].tolist()
            if self.tokenizer.eos_id in generated:
                generated = generated[: generated.index(self.tokenizer.eos_id)]
            completions.append(generated)
        return completions


def _round_up(value, multiple):
    return -(-value // multiple) * multiple


def generate(model, prompts, max_new_tokens=16, sampler="greedy", tokenizer=None):
    """Completes `prompts` (list of str) with `model`; returns the completions.

    Example:

    >>> generate(model, ["The capital of France is"])
    ['Paris .']
    """
    tokenizer = tokenizer or model.tokenizer
    return Generator(model, tokenizer, sampler=sampler).generate(prompts, max_new_tokens)
