"""Generation throughput (greedy tokens/s), and hooks for the methods still being built.

Constrained decoding, adversarial and fact-check fine-tuning are measured
against their baselines (unconstrained decoding, the MLE train step) once
they land; until then `pending_ratios` names each with the reason.
"""

import importlib.util

from kfine.knowledge.verbalizer import Verbalizer
from kfine.models.generation import Generator
from kfine.perf.timing import interleaved

MAX_NEW_TOKENS = 16

# ratio name -> (module that must exist, what it compares)
PENDING_MEASUREMENTS = {
    "constrained_vs_unconstrained": ("kfine.training.constraints", "KG-constrained over unconstrained greedy decoding"),
    "adversarial_step_vs_mle": ("kfine.training.adversarial", "adversarial (GAN) train step over the MLE train step"),
    "factcheck_step_vs_mle": ("kfine.training.factcheck", "fact-check-feedback train step over the MLE train step"),
}


def measure_generation(language_model, graph, templates, size):
    """Greedy completion of KG prompts with `language_model`; returns `(ratios, raw)`.

    Tokens/s counts the tokens actually generated (a completion stops at
    `[EOS]`), after one warm-up call that traces the sampling loop.
    """
    prompts = [prompt.text for prompt in Verbalizer(templates).prompts(graph.triples)[: size.generation_prompts]]
    generator = Generator(language_model, language_model.tokenizer, sampler="greedy")
    generator.generate_ids(prompts, MAX_NEW_TOKENS)
    generated = sum(len(row) for row in generator.generate_ids(prompts, MAX_NEW_TOKENS))
    timings = interleaved({"greedy": lambda: generator.generate_ids(prompts, MAX_NEW_TOKENS)}, size.repeats)
    raw = {
        "prompts": len(prompts),
        "max_new_tokens": MAX_NEW_TOKENS,
        "generated_tokens": generated,
        "greedy_tokens_per_second": generated / timings["greedy"]["seconds"],
        "timings": timings,
    }
    return {}, raw


def pending_ratios():
    """`(ratios, raw)` for the measurements whose methods have not landed: None, with the reason."""
    ratios, raw = {}, {}
    for name, (module, what) in PENDING_MEASUREMENTS.items():
        present = importlib.util.find_spec(module) is not None
        ratios[name] = None
        raw[name] = (
            f"pending: {what}; {module} exists but is not wired into kfine.perf yet"
            if present
            else f"pending: {what}; {module} has not landed"
        )
    return ratios, raw
