import keras
import keras_hub
import numpy as np
import pytest

from kfine.errors import KfineError
from kfine.models.causal_lm import build_causal_lm
from kfine.models.generation import Generator, generate, make_sampler
from people_kg import TINY_ARCHITECTURE

PROMPTS = ["Alda Varenko was born in", "The employer of Borin Quillby is", "Cela Marsh plays the"]


@pytest.fixture(scope="module")
def random_model(people_tokenizer):
    """An untrained model: its greedy choices are arbitrary but fixed."""
    keras.utils.set_random_seed(1)
    return build_causal_lm(people_tokenizer.vocabulary, dropout=0.0, **TINY_ARCHITECTURE)


@pytest.fixture(scope="module")
def random_generator(random_model, people_tokenizer):
    return Generator(random_model, people_tokenizer)


@pytest.fixture(scope="module")
def rigged_model(people_tokenizer):
    """A model whose logits are the head's bias at every step (zero kernel); tests set the bias."""
    model = build_causal_lm(people_tokenizer.vocabulary, dropout=0.0, **TINY_ARCHITECTURE)
    model.head.kernel.assign(np.zeros(model.head.kernel.shape, "float32"))
    return model


def prefer(model, logits_by_token):
    """Sets the rigged model's next-token logits: -30 except for the given tokens."""
    bias = np.full(model.head.vocabulary_size, -30.0, dtype="float32")
    for token, logit in logits_by_token.items():
        bias[token] = logit
    model.head.bias.assign(bias)


def _manual_greedy(model, tokenizer, prompt, max_new_tokens):
    """Greedy decoding the slow, obvious way: rerun the model on the growing sequence."""
    ids = tokenizer.encode(prompt)
    generated = []
    for _ in range(max_new_tokens):
        logits = keras.ops.convert_to_numpy(model(np.array([ids + generated], dtype="int32")))[0, -1]
        token = int(np.argmax(logits))
        if token == tokenizer.eos_id:
            break
        generated.append(token)
    return generated


# === Samplers ===


@pytest.mark.parametrize(
    "name, sampler_class",
    [("greedy", keras_hub.samplers.GreedySampler), ("top_k", keras_hub.samplers.TopKSampler),
     ("top_p", keras_hub.samplers.TopPSampler)],
)
def test_make_sampler_returns_keras_hub_samplers(name, sampler_class):
    assert isinstance(make_sampler(name), sampler_class)


def test_make_sampler_passes_k_and_p():
    assert make_sampler("top_k", k=3).k == 3
    assert make_sampler("top_p", p=0.5).p == 0.5


def test_make_sampler_rejects_unknown_names():
    with pytest.raises(KfineError, match=r"--sampler must be one of greedy, top_k, top_p. Received: 'beam'"):
        make_sampler("beam")


# === Greedy decoding ===


def test_greedy_matches_step_by_step_argmax(random_model, random_generator, people_tokenizer):
    lengths = []
    for prompt in PROMPTS:
        expected = _manual_greedy(random_model, people_tokenizer, prompt, max_new_tokens=6)
        assert random_generator.generate_ids([prompt], max_new_tokens=6) == [expected]
        lengths.append(len(expected))
    assert max(lengths) > 0  # not a degenerate model that stops at once


def test_batched_prompts_of_different_lengths_match_single_prompts(random_generator):
    """Right padding and the padding rows of a bucket do not change any row's completion."""
    singles = [random_generator.generate_ids([prompt], max_new_tokens=6)[0] for prompt in PROMPTS]
    assert random_generator.generate_ids(PROMPTS, max_new_tokens=6) == singles
    assert random_generator.generate_ids(PROMPTS[::-1], max_new_tokens=6) == singles[::-1]


def test_batch_size_does_not_change_completions(random_model, random_generator, people_tokenizer):
    small_batches = Generator(random_model, people_tokenizer, batch_size=2)
    prompts = PROMPTS + ["Dorim Tolvane works for", "Elva Oderly"]
    assert small_batches.generate_ids(prompts, max_new_tokens=4) == random_generator.generate_ids(prompts, 4)


def test_generate_returns_decoded_completions(random_model, random_generator, people_tokenizer):
    ids = random_generator.generate_ids(PROMPTS, max_new_tokens=5)
    texts = generate(random_model, PROMPTS, max_new_tokens=5)  # the model's own tokenizer
    assert texts == [people_tokenizer.decode(row) for row in ids]
    assert all(isinstance(text, str) for text in texts)


def test_completion_stops_at_eos(rigged_model, people_tokenizer):
    generator = Generator(rigged_model, people_tokenizer)
    prefer(rigged_model, {people_tokenizer.eos_id: 10.0})
    assert generator.generate_ids(PROMPTS, max_new_tokens=8) == [[], [], []]
    assert generator.generate(PROMPTS, max_new_tokens=8) == ["", "", ""]


def test_completion_is_max_new_tokens_long_without_eos(rigged_model, people_tokenizer):
    generator = Generator(rigged_model, people_tokenizer)
    harp = people_tokenizer.token_to_id("harp")
    prefer(rigged_model, {harp: 10.0})
    assert generator.generate_ids(PROMPTS, max_new_tokens=5) == [[harp] * 5] * 3
    assert generator.generate(PROMPTS[:1], max_new_tokens=2) == ["harp harp"]


def test_prompt_longer_than_the_model_is_refused(random_generator):
    prompt = " ".join(["Alda Varenko"] * 20)
    with pytest.raises(KfineError, match=r"A prompt has \d+ tokens; this model reads at most 31"):
        random_generator.generate_ids([prompt], max_new_tokens=2)


# === Sampling and logits processors ===


def test_top_k_samples_only_the_k_best(rigged_model, people_tokenizer):
    cello, harp, oboe = (people_tokenizer.token_to_id(token) for token in ("cello", "harp", "oboe"))
    prefer(rigged_model, {cello: 5.0, harp: 5.0, oboe: 4.0})
    generator = Generator(rigged_model, people_tokenizer, sampler=make_sampler("top_k", k=2, seed=0))
    tokens = [token for row in generator.generate_ids(PROMPTS * 4, max_new_tokens=8) for token in row]
    assert set(tokens) == {cello, harp}  # both equally likely: 96 draws see both


def test_top_p_samples_only_the_nucleus(rigged_model, people_tokenizer):
    cello, harp = people_tokenizer.token_to_id("cello"), people_tokenizer.token_to_id("harp")
    prefer(rigged_model, {cello: 5.0, harp: 4.9})  # cello alone holds more than p = 0.4
    generator = Generator(rigged_model, people_tokenizer, sampler=make_sampler("top_p", p=0.4, seed=0))
    assert generator.generate_ids(PROMPTS, max_new_tokens=6) == [[cello] * 6] * 3


def test_logits_processor_constrains_decoding(random_model, people_tokenizer):
    lute = people_tokenizer.token_to_id("lute")

    def only_lute(token_ids, index, logits):
        allowed = keras.ops.one_hot(keras.ops.full((keras.ops.shape(logits)[0],), lute), logits.shape[-1])
        return keras.ops.where(allowed > 0, logits, -1e9)

    generator = Generator(random_model, people_tokenizer, logits_processor=only_lute)
    assert generator.generate_ids(PROMPTS[:2], max_new_tokens=3) == [[lute] * 3] * 2


# === Confidence ===


def test_confidence_is_the_probability_of_the_first_sentence(rigged_model, people_tokenizer):
    harp, dot, eos = people_tokenizer.token_to_id("harp"), people_tokenizer.token_to_id("."), people_tokenizer.eos_id
    # The same logits at every step, "harp" the most likely: greedy repeats it.
    prefer(rigged_model, {harp: 2.0, dot: 1.0, eos: 0.0})
    generator = Generator(rigged_model, people_tokenizer)
    texts, confidences = generator.generate_with_confidence(["Cela Marsh plays the"], max_new_tokens=3)
    assert texts == generator.generate(["Cela Marsh plays the"], 3)
    p_harp = np.exp(2.0) / (np.exp(2.0) + np.exp(1.0) + 1.0)
    # No sentence end within the budget: the three tokens are the sentence.
    assert confidences[0] == pytest.approx(p_harp ** 3, rel=1e-4)
    rows = people_tokenizer.encode_batch(["Cela Marsh plays the"])
    p_dot = np.exp(1.0) / (np.exp(2.0) + np.exp(1.0) + 1.0)
    # The sentence stops at "."; a completion cut by [EOS] within the budget includes it.
    assert generator.sentence_confidence(rows, [[harp, dot, harp]], 3)[0] == pytest.approx(p_harp * p_dot, rel=1e-4)
    p_eos = 1.0 / (np.exp(2.0) + np.exp(1.0) + 1.0)
    assert generator.sentence_confidence(rows, [[harp]], 3)[0] == pytest.approx(p_harp * p_eos, rel=1e-4)
