"""The train steps of adversarial and fact-check-feedback fine-tuning over the plain MLE step.

Each method's trainer is built and compiled as the method builds it (its
own losses, optimizers and XLA setting), on a copy of the shipped LM, and
trains on one batch of its own data: for `adversarial`, probe-slice prompts
with knowledge corruptions and the KG's answers, and finetune sentences for
the MLE term (`adversarial_examples`, as the method builds them), also
timed compiled with XLA against eagerly traced (`adversarial_step_xla_vs_eager`,
under 1 when XLA is faster); for `factcheck`, the
shipped LM's samples of finetune prompts checked against the KG and turned
into references, unlikelihood negatives and preference pairs
(`FactCheckFineTuner`). Every batch has `size.batch_size` rows padded to
the LM's sequence length, so each step reads as many rows and positions as
the MLE step's packed batch; the method's own batches are only as wide as
its longest sentence (recorded as `natural_width`), so its absolute steps
are cheaper than these. All steps are timed in turns with an MLE step of
the same LM (see `timing.interleaved`).
"""

import dataclasses
import inspect

import numpy as np

from kfine.factcheck.knowledge_graph_checker import KnowledgeGraphChecker
from kfine.knowledge.linker import EntityLinker
from kfine.knowledge.task import QUICK as QUICK_TASK
from kfine.knowledge.task import FactTask
from kfine.models.loading import copy_model
from kfine.perf.timing import interleaved, min_ratio, paired_ratio
from kfine.perf.training import DEFAULT_JIT_COMPILE, fit_runner, packed_batch, train_step_runner
from kfine.training.adversarial import JIT_COMPILE as ADVERSARIAL_JIT_COMPILE
from kfine.training.adversarial import (
    AdversarialFineTuner,
    adversarial_dataset,
    adversarial_examples,
    build_adversarial_fine_tuner,
)
from kfine.training.factcheck import FULL_FEEDBACK, FactCheckFineTuner, prompt_references
from kfine.training.mle import next_token_loss
from kfine.training.probe import ProbeSlice

# The XLA setting both methods compile with when not told otherwise ("auto": XLA on accelerators only).
METHOD_JIT_COMPILE = inspect.signature(AdversarialFineTuner.compile).parameters["jit_compile"].default


def pad_width(batch, widths):
    """`batch` (a dict of arrays) with the last axis of each key in `widths` zero-padded to its width."""
    padded = {}
    for key, value in batch.items():
        value = np.asarray(value)
        if key in widths:
            value = np.pad(value, [(0, 0)] * (value.ndim - 1) + [(0, widths[key] - value.shape[-1])])
        padded[key] = value
    return padded


def adversarial_runner(language_model, task, size, jit_compile=None):
    """`fine_tune_adversarial`'s trainer on one batch of its data; returns `(runner, jit_compile, natural_width)`.

    Args:
        jit_compile: bool or None. None: the method's own setting.
    """
    model = copy_model(language_model)
    fine_tuner = build_adversarial_fine_tuner(model, seed=0, jit_compile=jit_compile)
    examples = adversarial_examples(task, model.tokenizer, fine_tuner.answer_length, model.sequence_length,
                                    rollout_triples=ProbeSlice(task).triples or None)
    batch = next(iter(adversarial_dataset(examples, size.batch_size)))
    width = model.sequence_length
    batch = pad_width(batch, {"token_ids": width, "corrupted_ids": width, "mle_ids": width})
    return fit_runner(fine_tuner, batch, size.train_steps), fine_tuner.jit_compile, examples["token_ids"].shape[1]


def measure_adversarial_xla(language_model, task, size):
    """The adversarial train step compiled with XLA against without, in turns; returns `(ratio, raw)`."""
    runners = {f"adversarial_{name}": adversarial_runner(language_model, task, size, jit_compile=jit_compile)[0]
               for name, jit_compile in (("xla", True), ("no_xla", False))}
    timings = interleaved(runners, size.repeats)
    ratio = paired_ratio(timings, "adversarial_xla", "adversarial_no_xla")
    return ratio, {
        "step_seconds": {name: timing["seconds"] / size.train_steps for name, timing in timings.items()},
        "xla_vs_eager_cpu_time": paired_ratio(timings, "adversarial_xla", "adversarial_no_xla", cpu=True),
        "min_of_rounds": min_ratio(timings, "adversarial_xla", "adversarial_no_xla"),
        "method_setting": ADVERSARIAL_JIT_COMPILE,
        "timings": timings,
    }


def feedback_runners(language_model, task, size):
    """`FactCheckFineTuner`'s trainer, without and with the preference loss, on one batch of a round's data.

    The samples come from the shipped LM (top-k, as a round samples them)
    on `size.batch_size` finetune prompts, checked by the exact KG checker.

    Returns:
        `(runners, jit_compile, natural_width, counts)`: runners `factcheck`
        (MLE + unlikelihood) and `factcheck_dpo` (+ DPO), the resolved XLA
        setting, the round's widest row, and what went into the round's data.
    """
    references = prompt_references(task)
    prompts = list(references)[: size.batch_size]
    reference_rows = {prompt: language_model.tokenizer.encode_batch(references[prompt], add_eos=True)
                      for prompt in prompts}
    checker = KnowledgeGraphChecker(task.model_graph, task.templates)
    # References are `[BOS] ... [EOS]` rows that the model reads less their last token.
    width = language_model.sequence_length + 1
    widths = {"references": width, "negatives": width, "chosen": width, "rejected": width,
              "negative_mask": width - 1, "chosen_mask": width - 1, "rejected_mask": width - 1}
    tuners = {
        name: FactCheckFineTuner(copy_model(language_model), checker, seed=0, config=dataclasses.replace(
            FULL_FEEDBACK, batch_size=size.batch_size, preference_weight=preference_weight))
        for name, preference_weight in (("factcheck", 0.0), ("factcheck_dpo", 1.0))
    }
    # One round's samples serve both: the losses differ, not the data.
    samples = tuners["factcheck"]._sample(prompts, round_index=0)
    verdicts = checker.check([sentence for _, sentence, _ in samples])
    runners = {}
    for name, tuner in tuners.items():
        dataset, counts = tuner._training_data(samples, verdicts, reference_rows)
        batch = {key: value.numpy() for key, value in next(iter(dataset)).items()}
        natural_width = max(batch[key].shape[1] for key in ("references", "negatives", "chosen", "rejected"))
        runners[name] = fit_runner(tuner.trainer, pad_width(batch, widths), size.train_steps)
    return runners, tuners["factcheck"].trainer.jit_compile, natural_width, counts


def measure_methods(language_model, graph, templates, size):
    """Times the adversarial and fact-check train steps against the MLE step, in turns; returns `(ratios, raw)`.

    Args:
        language_model: `CausalLanguageModel`. Every trainer trains a copy of it.
        graph: `KnowledgeGraph` (the bundled one): the MLE batch's text and,
            split as the bench splits it, the methods' facts.
        templates: `Templates` of `graph`.
        size: `PerfSize` (`batch_size`, `train_steps`, `repeats`).
    """
    task = FactTask(graph, templates, size=QUICK_TASK)
    sequence_length = language_model.sequence_length
    steps = size.train_steps
    batch = packed_batch(language_model.tokenizer, EntityLinker(graph, language_model.tokenizer), graph, templates,
                         size.batch_size, sequence_length)
    runners = {"mle": train_step_runner(copy_model(language_model), batch["token_ids"], batch["targets"],
                                        next_token_loss(), DEFAULT_JIT_COMPILE, steps)}
    runners["adversarial"], adversarial_jit, adversarial_width = adversarial_runner(language_model, task, size)
    feedback, feedback_jit, feedback_width, feedback_counts = feedback_runners(language_model, task, size)
    runners.update(feedback)
    timings = interleaved(runners, size.repeats)
    xla_ratio, xla_raw = measure_adversarial_xla(language_model, task, size)

    step = {name: timing["seconds"] / steps for name, timing in timings.items()}
    ratios = {
        "adversarial_step_vs_mle": paired_ratio(timings, "adversarial", "mle"),
        "factcheck_step_vs_mle": paired_ratio(timings, "factcheck", "mle"),
        "adversarial_step_xla_vs_eager": xla_ratio,
    }
    raw = {
        "batch_size": size.batch_size,
        "sequence_length": sequence_length,
        "steps_per_repeat": steps,
        "repeats": size.repeats,
        "jit_compile": {"mle": DEFAULT_JIT_COMPILE, "method_setting": METHOD_JIT_COMPILE,
                        "adversarial": adversarial_jit, "factcheck": feedback_jit},
        "natural_width": {"adversarial": adversarial_width, "factcheck": feedback_width},
        "factcheck_round": feedback_counts,
        "step_seconds": step,
        "step_cpu_seconds": {name: timing["cpu_seconds"] / steps for name, timing in timings.items()},
        "factcheck_dpo_step_vs_mle": paired_ratio(timings, "factcheck_dpo", "mle"),
        # The same ratios in CPU seconds, which a shared machine's load bends less.
        "adversarial_step_vs_mle_cpu_time": paired_ratio(timings, "adversarial", "mle", cpu=True),
        "factcheck_step_vs_mle_cpu_time": paired_ratio(timings, "factcheck", "mle", cpu=True),
        "min_of_rounds": {name: min_ratio(timings, method, "mle") for name, method in
                          (("adversarial_step_vs_mle", "adversarial"), ("factcheck_step_vs_mle", "factcheck"))},
        "timings": timings,
        "adversarial_xla": xla_raw,
    }
    return ratios, raw
