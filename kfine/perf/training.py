"""Training throughput: kfine's LM against keras-hub's GPT2, the cost of knowledge, XLA, and MFU.

Every contender trains on the same batch (real sentences of the bundled KG,
packed end to end into `(batch, sequence)` rows, so no step pays for
padding), with the same loss and optimizer, and its train steps are timed
in turns with the others and with a large float32 matmul, the machine's
practical peak (see `timing.interleaved`). Every ratio is the median of
the per-round ratios (`timing.paired_ratio`). A second, identical plain LM
runs as a control: its ratio to the first shows how far two runs of the
same model drift apart on the machine at the time.
"""

import inspect

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from kfine.knowledge.linker import EntityLinker
from kfine.knowledge.verbalizer import Verbalizer
from kfine.layers import KnowledgeInjectionLayer
from kfine.models.causal_lm import build_causal_lm
from kfine.models.optimizer import build_optimizer
from kfine.perf.timing import interleaved, min_ratio, paired_ratio
from kfine.training.mle import next_token_loss, train_mle

LEARNING_RATE = 1e-3
# The second, identical plain LM: the measurement's own noise.
CONTROL = "kfine_lm_control"
# The XLA setting kfine trains with by default; the LM comparison uses it for both models.
DEFAULT_JIT_COMPILE = inspect.signature(train_mle).parameters["jit_compile"].default


def packed_batch(tokenizer, linker, graph, templates, batch_size, sequence_length):
    """One training batch of real sentences, `[BOS] sentence [EOS]` packed end to end.

    Args:
        tokenizer: `WordPieceTokenizer`.
        linker: `EntityLinker` over `graph`, with `tokenizer`.
        graph: `KnowledgeGraph`. Its facts, verbalized, are the text.
        templates: `Templates`.
        batch_size: int.
        sequence_length: int.

    Returns:
        dict of int32 arrays `(batch_size, sequence_length)`: `token_ids`,
        `entity_ids` (the linker's per-token ids) and `targets` (next tokens).
    """
    sentences = Verbalizer(templates).sentences(graph.triples, rng=0)
    needed = batch_size * (sequence_length + 1)
    tokens, entities = [], []
    for row in tokenizer.encode_batch(sentences, add_eos=True):
        tokens.extend(row)
        entities.extend(linker.entity_ids_per_token(row))
        if len(tokens) >= needed:
            break
    if len(tokens) < needed:
        tokens, entities = np.resize(tokens, needed), np.resize(entities, needed)
    tokens = np.asarray(tokens[:needed], "int32").reshape(batch_size, sequence_length + 1)
    entities = np.asarray(entities[:needed], "int32").reshape(batch_size, sequence_length + 1)
    return {"token_ids": tokens[:, :-1], "entity_ids": entities[:, :-1], "targets": tokens[:, 1:]}


def keras_hub_gpt2(vocabulary_size, architecture, dropout=0.1):
    """keras-hub's `GPT2CausalLM` (GPT2Backbone + tied `ReversibleEmbedding` head) with kfine's dimensions."""
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=vocabulary_size,
        num_layers=architecture["num_layers"],
        num_heads=architecture["num_heads"],
        hidden_dim=architecture["hidden_dim"],
        intermediate_dim=architecture["intermediate_dim"],
        dropout=dropout,
        max_sequence_length=architecture["sequence_length"],
    )
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)


def injected_lm(language_model, graph):
    """`language_model` with a `KnowledgeInjectionLayer` (and its `KnowledgeGraphEncoder`) before the head.

    The layer is configured as `build_knowledge_model` configures it; unlike
    that model there is no fact pointer, so the difference to the plain LM is
    the injection alone.
    """
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    entity_ids = keras.Input((None,), dtype="int32", name="entity_ids")
    injection = KnowledgeInjectionLayer(graph, mode="gated", entity_head=False, name="knowledge_injection")
    features = injection([language_model.hidden_states(token_ids), entity_ids])
    logits = language_model.head(features)
    return keras.Model({"token_ids": token_ids, "entity_ids": entity_ids}, logits, name="injected_lm")


def train_step_runner(model, inputs, targets, loss, jit_compile, steps):
    """Compiles `model`, runs one `fit` step (tracing, XLA), and returns a callable fitting `steps` more.

    The steps read one fixed batch from a prefetched `tf.data` pipeline
    through Keras's own compiled train function, as `fit` does in training
    (see `fit_runner`).
    """
    model.compile(
        optimizer=keras.optimizers.AdamW(LEARNING_RATE, weight_decay=0.01), loss=loss, jit_compile=jit_compile
    )
    return fit_runner(model, (inputs, targets), steps)


def fit_runner(model, batch, steps):
    """Runs one `fit` step of the compiled `model` on `batch`, and returns a callable running `steps` more.

    The first step pays for tracing (and XLA), so the callable times only
    steady-state steps. `batch` is what the model's `train_step` receives:
    an `(inputs, targets)` tuple, or a dict for a custom `train_step`.

    The timed steps call Keras's compiled train function, the one `fit`
    runs each step, on one iterator over a prefetched `tf.data` pipeline,
    rather than calling `fit` per repeat: each `fit` call makes a new
    iterator, and tearing one down stalled ~0.9 s of wall-clock time here
    (no CPU time), as long as two train steps of the shipped LM.
    """
    dataset = tf.data.Dataset.from_tensors(batch).repeat().prefetch(tf.data.AUTOTUNE)
    build_optimizer(model)
    model.fit(dataset, steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
    model.make_train_function()
    iterator = iter(dataset)

    def run():
        for _ in range(steps):
            logs = model.train_function(iterator)
        # The step's outputs exist only once it has run, so reading one waits for it.
        keras.tree.map_structure(keras.ops.convert_to_numpy, logs)

    run()  # The new iterator's first batch.
    return run


def matmul_runner(size):
    """A callable multiplying two `(size, size)` float32 matrices; `2 * size**3` FLOPs a call."""
    generator = tf.random.Generator.from_seed(0)
    left, right = generator.normal((size, size)), generator.normal((size, size))
    multiply = tf.function(lambda: tf.linalg.matmul(left, right))
    multiply()

    def run():
        multiply().numpy()

    return run


def train_flops_per_token(architecture, vocabulary_size):
    """Matmul FLOPs of one training token of a decoder-only LM (forward + backward = 3x forward).

    Per layer: Q, K, V and output projections `8 d^2`, attention scores and
    weighted values `4 S d` (the full `S x S` product that the layer
    computes, causal mask or not), feed-forward `4 d f`; then the head
    `2 d V`. Element-wise work (norms, softmax, GELU, AdamW) is left out,
    as in the usual MFU definition (PaLM, appendix B).
    """
    d, f = architecture["hidden_dim"], architecture["intermediate_dim"]
    s, layers = architecture["sequence_length"], architecture["num_layers"]
    forward = layers * (8 * d * d + 4 * s * d + 4 * d * f) + 2 * d * vocabulary_size
    return 3 * forward


def measure_training(language_model, architecture, graph, templates, size):
    """Times the train steps of every contender, in turns; returns `(ratios, raw)`.

    Args:
        language_model: `CausalLanguageModel`. Its vocabulary and tokenizer are used;
            the models timed are fresh ones with `architecture`.
        architecture: dict with `num_layers`, `hidden_dim`, `num_heads`,
            `intermediate_dim`, `sequence_length`.
        graph: `KnowledgeGraph` the knowledge models inject.
        templates: `Templates` of `graph` (the training text).
        size: `PerfSize`.
    """
    tokenizer = language_model.tokenizer
    vocabulary = language_model.vocabulary
    sequence_length = architecture["sequence_length"]
    batch = packed_batch(
        tokenizer, EntityLinker(graph, tokenizer), graph, templates, size.batch_size, sequence_length
    )
    steps = size.train_steps
    loss = next_token_loss()
    token_ids, entity_ids, targets = (tf.constant(batch[name]) for name in ("token_ids", "entity_ids", "targets"))
    gpt2_inputs = {"token_ids": token_ids, "padding_mask": tf.ones_like(token_ids, tf.bool)}
    knowledge_inputs = {"token_ids": token_ids, "entity_ids": entity_ids}

    def kfine_lm():
        return build_causal_lm(vocabulary, **architecture)

    runners = {}
    for jit_compile in (False, True):
        suffix = "xla" if jit_compile else "no_xla"
        runners[f"kfine_lm_{suffix}"] = train_step_runner(kfine_lm(), token_ids, targets, loss, jit_compile, steps)
        runners[f"keras_hub_gpt2_{suffix}"] = train_step_runner(
            keras_hub_gpt2(len(vocabulary), architecture), gpt2_inputs, targets, loss, jit_compile, steps
        )
    runners["kfine_lm_injected"] = train_step_runner(
        injected_lm(kfine_lm(), graph), knowledge_inputs, targets, loss, DEFAULT_JIT_COMPILE, steps
    )
    runners[CONTROL] = train_step_runner(kfine_lm(), token_ids, targets, loss, DEFAULT_JIT_COMPILE, steps)
    runners["matmul"] = matmul_runner(size.matmul_size)
    timings = interleaved(runners, size.training_repeats)

    default = "xla" if DEFAULT_JIT_COMPILE else "no_xla"
    lm = f"kfine_lm_{default}"
    step = {name: timing["seconds"] / steps for name, timing in timings.items() if name != "matmul"}
    tokens_per_step = size.batch_size * sequence_length
    flops_per_step = train_flops_per_token(architecture, len(vocabulary)) * tokens_per_step
    matmul_flops = 2 * size.matmul_size**3
    peak = matmul_flops / timings["matmul"]["seconds"]
    achieved = flops_per_step / step[lm]
    pairs = {
        "lm_vs_kerashub": (f"keras_hub_gpt2_{default}", lm),
        "injection_overhead": ("kfine_lm_injected", lm),
        "xla_speedup": ("kfine_lm_no_xla", "kfine_lm_xla"),
        "control_vs_lm": (CONTROL, lm),
    }
    # MFU = (train FLOPs / LM time) / (matmul FLOPs / matmul time), per round.
    mfu_scale = flops_per_step * steps / matmul_flops
    ratios = {name: paired_ratio(timings, *pair) for name, pair in pairs.items()}
    control_vs_lm = ratios.pop("control_vs_lm")
    ratios["mfu"] = mfu_scale * paired_ratio(timings, "matmul", lm)
    raw = {
        "batch_size": size.batch_size,
        "sequence_length": sequence_length,
        "architecture": dict(architecture),
        "vocabulary_size": len(vocabulary),
        "optimizer": f"AdamW(learning_rate={LEARNING_RATE}, weight_decay=0.01)",
        "default_jit_compile": DEFAULT_JIT_COMPILE,
        "steps_per_repeat": steps,
        "repeats": size.training_repeats,
        "step_seconds": step,
        "step_cpu_seconds": {name: timings[name]["cpu_seconds"] / steps for name in step},
        "tokens_per_second": {name: tokens_per_step / seconds for name, seconds in step.items()},
        "lm_vs_kerashub_xla": paired_ratio(timings, "keras_hub_gpt2_xla", "kfine_lm_xla"),
        "lm_vs_kerashub_no_xla": paired_ratio(timings, "keras_hub_gpt2_no_xla", "kfine_lm_no_xla"),
        "keras_hub_xla_speedup": paired_ratio(timings, "keras_hub_gpt2_no_xla", "keras_hub_gpt2_xla"),
        # Two identical LMs: how far apart the machine put the same work (1.0 on a quiet machine).
        "control_vs_lm": control_vs_lm,
        # The same ratios in CPU seconds, which a shared machine's load bends less.
        "injection_overhead_cpu_time": paired_ratio(timings, "kfine_lm_injected", lm, cpu=True),
        "mfu_cpu_time": mfu_scale * paired_ratio(timings, "matmul", lm, cpu=True),
        # The estimator used before: each contender's fastest round.
        "min_of_rounds": {
            **{name: min_ratio(timings, *pair) for name, pair in pairs.items()},
            "mfu": mfu_scale * min_ratio(timings, "matmul", lm),
        },
        "train_flops_per_step": flops_per_step,
        "achieved_flops_per_second": achieved,
        "matmul_size": size.matmul_size,
        "peak_matmul_flops_per_second": peak,
        "timings": timings,
    }
    return ratios, raw
