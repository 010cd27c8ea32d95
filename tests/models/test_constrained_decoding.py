"""KG-constrained decoding on the people KG: allowed answers, the trie mask, abstention, XLA."""

import keras
import numpy as np
import pytest

from kfine.errors import KfineError
from kfine.evaluation.evaluate import judge_prompts
from kfine.evaluation.metrics import rates
from kfine.models.causal_lm import build_causal_lm
from kfine.models.constrained_decoding import ConstrainedGenerator, KnowledgeConstraint, constrained
from kfine.models.generation import Generator
from people_kg import TINY_ARCHITECTURE


@pytest.fixture(scope="module")
def random_model(people_tokenizer):
    """An untrained model: its greedy choices are arbitrary, so only the constraint keeps answers valid."""
    keras.utils.set_random_seed(3)
    return build_causal_lm(people_tokenizer.vocabulary, dropout=0.0, **TINY_ARCHITECTURE)


@pytest.fixture(scope="module")
def constraint(people_task, people_tokenizer):
    return KnowledgeConstraint(people_task.model_graph, people_task.templates, people_tokenizer)


def _prompt(task, split, relation=None):
    return next(prompt for prompt, _ in task.evaluation_prompts(split) if relation in (None, prompt.relation))


def test_template_prompt_allows_the_kg_objects(people_task, constraint):
    prompt = _prompt(people_task, "heldout", "works_for")
    allowed, abstain = constraint.allowed_entities(prompt.text)
    assert allowed == people_task.model_graph.objects(prompt.subject, "works_for") and not abstain


def test_subject_missing_from_the_model_kg_abstains(people_task, constraint):
    prompt = _prompt(people_task, "unknown")
    assert not people_task.model_graph.has_entity(prompt.subject)
    assert constraint.allowed_entities(prompt.text) == (set(), True)


def test_paraphrase_allows_the_subjects_objects(people_task, constraint):
    prompt = _prompt(people_task, "paraphrase")
    graph = people_task.model_graph
    expected = set().union(*(graph.objects(prompt.subject, relation) for relation in graph.relations))
    assert constraint.allowed_entities(prompt.text) == (expected, False)


def test_prompt_without_any_entity_allows_any_entity_or_abstention(constraint):
    assert constraint.allowed_entities("Nothing here is") == (None, True)


def test_constrained_answers_are_always_allowed_entities(people_task, random_model, people_tokenizer):
    generator = constrained(Generator(random_model, people_tokenizer), people_task.model_graph, people_task.templates)
    plain = Generator(random_model, people_tokenizer)
    for split in ("seen", "heldout", "unknown", "paraphrase"):
        prompts = people_task.evaluation_prompts(split)
        judged = judge_prompts(generator, people_task.knowledge_graph, prompts)
        assert rates(judged)["invalid_entity_rate"] == 0.0, split
        for (prompt, _), judgement in zip(prompts, judged):
            allowed, abstain = generator.constraint.allowed_entities(prompt.text)
            if judgement.verdict == "abstained":
                assert abstain
            else:
                assert allowed is None or judgement.entity in allowed, (prompt.text, judgement.completion)
    unknown = judge_prompts(generator, people_task.knowledge_graph, people_task.evaluation_prompts("unknown"))
    assert all(judgement.completion == "unknown" for judgement in unknown)
    # The untrained model alone names no valid entity: the constraint did the work.
    judged_plain = judge_prompts(plain, people_task.knowledge_graph, people_task.evaluation_prompts("heldout"))
    assert rates(judged_plain)["invalid_entity_rate"] > 0.5


def test_multi_token_names_come_out_whole_even_against_the_model(people_task, people_tokenizer, random_model):
    """A model that prefers a forbidden token at every step still gives a whole allowed name."""
    prompts = [prompt for prompt, _ in people_task.evaluation_prompts("heldout") if prompt.relation == "works_for"]
    oboe = people_tokenizer.token_to_id("oboe")

    def prefer_oboe(token_ids, index, logits):
        return logits + 50.0 * keras.ops.one_hot(keras.ops.full((keras.ops.shape(logits)[0],), oboe), logits.shape[-1])

    generator = constrained(Generator(random_model, people_tokenizer, logits_processor=prefer_oboe),
                            people_task.model_graph, people_task.templates)
    completions = generator.generate([prompt.text for prompt in prompts])
    for prompt, completion in zip(prompts, completions):
        # Allowed: one company's name (or an alias), then the end of the sentence, then free text (oboes).
        names = [name for entity in people_task.model_graph.objects(prompt.subject, "works_for")
                 for name in people_task.model_graph.names(entity)]
        answer = completion.replace(" ", "")
        assert any(answer == name.replace(" ", "") or answer.startswith(name.replace(" ", "") + ".")
                   for name in names), completion


def test_xla_gives_the_same_completions(people_task, random_model, people_tokenizer):
    prompts = [prompt.text for split in ("heldout", "unknown", "paraphrase")
               for prompt, _ in people_task.evaluation_prompts(split)[:4]]
    graph, templates = people_task.model_graph, people_task.templates
    eager = constrained(Generator(random_model, people_tokenizer), graph, templates).generate_ids(prompts)
    xla = constrained(Generator(random_model, people_tokenizer, jit_compile=True), graph, templates)
    assert xla.generate_ids(prompts) == eager


def test_configurable_abstention_phrase(people_task, random_model, people_tokenizer):
    generator = constrained(Generator(random_model, people_tokenizer), people_task.model_graph, people_task.templates,
                            abstention="cello")  # any words the tokenizer knows
    assert generator.generate([_prompt(people_task, "unknown").text]) == ["cello"]


def test_bad_arguments_are_refused(people_task, people_tokenizer, random_model):
    with pytest.raises(KfineError, match="abstention"):
        KnowledgeConstraint(people_task.model_graph, people_task.templates, people_tokenizer, abstention=" ")
    with pytest.raises(KfineError, match="knowledge_graph"):
        KnowledgeConstraint("kg.tsv", people_task.templates, people_tokenizer)
    other = KnowledgeConstraint(people_task.model_graph, people_task.templates, people_tokenizer)
    other.trie.vocabulary_size += 1
    with pytest.raises(KfineError, match="tokenizer"):
        ConstrainedGenerator(Generator(random_model, people_tokenizer), other)


def test_name_mask_drops_names_longer_than_the_budget(constraint):
    answers = constraint.answers(["Nothing here is"])
    mask = constraint.trie.name_mask(answers, max_new_tokens=2)
    assert mask[0].any() and np.all(constraint.trie.name_lengths[mask[0]] < 2)
    # A row whose names are all too long falls back to the abstention phrase.
    answers.entities[:] = False
    answers.abstain[:] = False
    fallback = constraint.trie.name_mask(answers, max_new_tokens=2)[0]
    assert fallback.tolist() == [False] * (constraint.trie.num_names - 1) + [True]
