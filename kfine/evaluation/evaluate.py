"""Runs a model over evaluation prompts and judges every completion."""

import dataclasses

from kfine.evaluation.metrics import AnswerJudge, rates
from kfine.knowledge.names import DEFAULT_ABSTENTION


def judge_prompts(generator, knowledge_graph, prompts_with_gold, abstention=DEFAULT_ABSTENTION, max_new_tokens=16):
    """Completes each prompt with `generator` and judges it.

    Args:
        generator: an object with `generate(list_of_str, max_new_tokens) -> list_of_str`
            (e.g. `kfine.models.generation.Generator`); when it also has
            `generate_with_confidence`, each `Judgement` gets the confidence.
        knowledge_graph: `KnowledgeGraph` whose names define the entities.
        prompts_with_gold: list of `(Prompt, gold_objects)`.
        abstention: str. The abstention phrase.
        max_new_tokens: int. Completion budget.

    Returns:
        A list of `Judgement`s, one per prompt.
    """
    judge = AnswerJudge(knowledge_graph, abstention)
    prompts = [prompt.text for prompt, _ in prompts_with_gold]
    if hasattr(generator, "generate_with_confidence"):
        completions, confidences = generator.generate_with_confidence(prompts, max_new_tokens)
    else:
        completions, confidences = generator.generate(prompts, max_new_tokens), [None] * len(prompts)
    return [
        dataclasses.replace(judge.judge(prompt.text, completion, prompt.suffix, gold), confidence=confidence)
        for (prompt, gold), completion, confidence in zip(prompts_with_gold, completions, confidences)
    ]


def evaluate_splits(generator, task, splits, abstention=DEFAULT_ABSTENTION):
    """Returns `{split: (rates, judgements)}` for each evaluation split of `task`."""
    results = {}
    for split in splits:
        judgements = judge_prompts(generator, task.knowledge_graph, task.evaluation_prompts(split), abstention)
        results[split] = (rates(judgements), judgements)
    return results
