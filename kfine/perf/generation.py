"""Generation throughput: greedy tokens/s, unconstrained and KG-constrained.

Both decoders complete the same KG prompts with the shipped LM, up to the
same number of new tokens; constrained decoding (`constrained_decoding`)
also reads every prompt for its allowed answers and masks the logits of the
answer slot inside the sampling loop, so its ratio is what a user pays for
answers that only name KG entities.
"""

from kfine.knowledge.verbalizer import Verbalizer
from kfine.models.constrained_decoding import constrained
from kfine.models.generation import Generator
from kfine.perf.timing import interleaved, min_ratio, paired_ratio

MAX_NEW_TOKENS = 16


def measure_generation(language_model, graph, templates, size):
    """Greedy completion of KG prompts with `language_model`, free and KG-constrained; returns `(ratios, raw)`.

    Tokens/s counts the tokens actually generated (a completion stops at
    `[EOS]`), after one warm-up call of each decoder that traces its
    sampling loop; the decoders are timed in turns.

    Args:
        language_model: `CausalLanguageModel`.
        graph: `KnowledgeGraph`. Its facts are the prompts; constrained
            decoding allows the entities it names.
        templates: `Templates` of `graph`.
        size: `PerfSize` (`generation_prompts`, `repeats`).
    """
    prompts = [prompt.text for prompt in Verbalizer(templates).prompts(graph.triples)[: size.generation_prompts]]
    greedy = Generator(language_model, language_model.tokenizer, sampler="greedy")
    decoders = {"greedy": greedy, "constrained": constrained(greedy, graph, templates)}
    generated = {}
    for name, decoder in decoders.items():
        decoder.generate_ids(prompts, MAX_NEW_TOKENS)
        generated[name] = sum(len(row) for row in decoder.generate_ids(prompts, MAX_NEW_TOKENS))
    functions = {name: lambda decoder=decoder: decoder.generate_ids(prompts, MAX_NEW_TOKENS)
                 for name, decoder in decoders.items()}
    # The prompt reading alone (Python, per call): the part of the cost outside the sampling loop.
    functions["allowed_answers"] = lambda: decoders["constrained"].constraint.answers(prompts)
    timings = interleaved(functions, size.repeats)
    ratios = {"constrained_vs_unconstrained": paired_ratio(timings, "constrained", "greedy")}
    raw = {
        "prompts": len(prompts),
        "max_new_tokens": MAX_NEW_TOKENS,
        "generated_tokens": generated["greedy"],
        "constrained_generated_tokens": generated["constrained"],
        "greedy_tokens_per_second": generated["greedy"] / timings["greedy"]["seconds"],
        "constrained_tokens_per_second": generated["constrained"] / timings["constrained"]["seconds"],
        "seconds": {name: timing["seconds"] for name, timing in timings.items()},
        "constrained_vs_unconstrained_cpu_time": paired_ratio(timings, "constrained", "greedy", cpu=True),
        "min_of_rounds": {"constrained_vs_unconstrained": min_ratio(timings, "constrained", "greedy")},
        "timings": timings,
    }
    return ratios, raw
