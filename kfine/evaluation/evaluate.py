"""Runs a model over evaluation prompts and judges every completion."""

from kfine.evaluation.metrics import AnswerJudge, rates
from kfine.knowledge.names import DEFAULT_ABSTENTION


def judge_prompts(generator, knowledge_graph, prompts_with_gold, abstention=DEFAULT_ABSTENTION, max_new_tokens=16):
    """Completes each prompt with `generator` and judges it.

    Args:
        generator: an object with `generate(list_of_str, max_new_tokens) -> list_of_str`
            (e.g. `kfine.models.generation.Generator`).
        knowledge_graph: `KnowledgeGraph` whose names define the entities.
        prompts_with_gold: list of `(Prompt, gold_objects)`.
        abstention: str. The abstention phrase.
        max_new_tokens: int. Completion budget.

    Returns:
        A list of `Judgement`s, one per prompt.
    """
    judge = AnswerJudge(knowledge_graph, abstention)
    completions = generator.generate([prompt.text for prompt, _ in prompts_with_gold], max_new_tokens)
    return [
        judge.judge(prompt.text, completion, prompt.suffix, gold)
        for (prompt, gold), completion in zip(prompts_with_gold, completions)
    ]


def evaluate_splits(generator, task, splits, abstention=DEFAULT_ABSTENTION):
    """Returns `{split: (rates, judgements)}` for each evaluation split of `task`."""
    results = {}
    for split in splits:
        judgements = judge_prompts(generator, task.knowledge_graph, task.evaluation_prompts(split), abstention)
        results[split] = (rates(judgements), judgements)
    return results
