"""Fact-check-feedback fine-tuning: sample, check, and learn from what the checker refutes.

After the baseline's MLE fine-tune, `FactCheckFineTuner` runs rounds that
(a) sample completions of the training prompts, (b) check the sentences with
a fact checker (neural `FactChecker` or the exact `KnowledgeGraphChecker`),
and (c) train on:

- MLE on the reference sentences (the finetune facts), so the model keeps them;
- unlikelihood (Welleck et al., 2020) on refuted samples,
  `-log(1 - p(c | prefix))`, at the token `c` where the refuted continuation
  leaves every reference of its prompt: the first wrong token of the answer,
  not the words it shares with a right one, nor the sentence's ending;
- the probe slice (`kfine.training.probe`): questions about finetune-split
  subjects kept out of the MLE sentences; their refuted answers make the
  abstention phrase the target (SFT) and the chosen side of DPO pairs,
  their supported ones are kept as positives, so the model learns to
  abstain where its knowledge ends;
- optionally a DPO preference loss (Rafailov et al., 2023; FactTune) on pairs
  of the same prompt, supported sample (or the reference when no sample was
  supported) over refuted sample, against the frozen model of the start of
  the feedback rounds: `-log σ(β [(log π(w) - log π_ref(w)) - (log π(l) - log π_ref(l))])`.

The parts are in `kfine.training.feedback`; this module holds the methods.
"""

import dataclasses
import os

from kfine.factcheck.fact_checker import FactChecker
from kfine.factcheck.knowledge_graph_checker import KnowledgeGraphChecker
from kfine.models.generation import Generator
from kfine.training.baseline import fine_tune_baseline
from kfine.training.feedback.checkers import build_checker, check_checker_kind
from kfine.training.feedback.config import FULL_FEEDBACK, QUICK_FEEDBACK
from kfine.training.feedback.round_data import prompt_references
from kfine.training.feedback.rounds import FactCheckFineTuner
from kfine.training.probe import AbstentionTargets, ProbeSlice

# Where `FeedbackGenerator.write_artifacts` puts its files in the model directory.
FACT_CHECKER_DIR = "fact_checker"
TEMPLATES_FILE = "templates.json"


class FeedbackGenerator(Generator):
    """The fine-tuned model's `Generator`, with the checker that taught it.

    Args:
        model: the fine-tuned `CausalLanguageModel`.
        fact_checker: the `FactChecker` or `KnowledgeGraphChecker` used.
        feedback_history: list of per-round statistics (`FactCheckFineTuner.fit`).
        templates: `Templates` of the task, saved for the KG checker.
    """

    def __init__(self, model, fact_checker, feedback_history, templates, **kwargs):
        super().__init__(model, model.tokenizer, **kwargs)
        self.fact_checker = fact_checker
        self.feedback_history = feedback_history
        self.templates = templates

    def write_artifacts(self, directory):
        """Saves, for `kfine check`, a neural checker as `fact_checker/` and the templates the KG checker reads."""
        if isinstance(self.fact_checker, FactChecker):
            self.fact_checker.save_to(os.path.join(directory, FACT_CHECKER_DIR))
        self.templates.save(os.path.join(directory, TEMPLATES_FILE))


def fine_tune_with_feedback(task, pretrained, seed, log_dir, quick=False, verbose=0, checker="neural",
                            preference_weight=0.0):
    """The baseline's MLE fine-tune, then fact-check-feedback rounds (see the module docs)."""
    check_checker_kind(checker)
    generator = fine_tune_baseline(task, pretrained, seed, os.path.join(log_dir, "mle"), quick=quick,
                                   verbose=verbose)
    model = generator.model
    fact_checker, _ = build_checker(checker, task, model, seed=seed, log_dir=log_dir, quick=quick, verbose=verbose)
    config = QUICK_FEEDBACK if quick else FULL_FEEDBACK
    config = dataclasses.replace(config, preference_weight=preference_weight)
    reference_checker = KnowledgeGraphChecker(task.model_graph, task.templates) if checker == "neural" else None
    probe = ProbeSlice(task)
    probe_prompts = probe.prompts()
    targets = AbstentionTargets(probe_prompts, model.tokenizer, KnowledgeGraphChecker(probe.graph, probe.templates))
    tuner = FactCheckFineTuner(model, fact_checker, config, reference_checker=reference_checker, seed=seed,
                               log_dir=log_dir, verbose=verbose, abstention_targets=targets)
    history = tuner.fit({**prompt_references(task), **{prompt: [] for prompt in probe_prompts}})
    return FeedbackGenerator(model, fact_checker, history, task.templates)


def fine_tune_factcheck(task, pretrained, seed, log_dir, quick=False, verbose=0, checker="neural"):
    """MLE + unlikelihood on what the fact checker refutes."""
    return fine_tune_with_feedback(task, pretrained, seed, log_dir, quick=quick, verbose=verbose, checker=checker)


def fine_tune_factcheck_preference(task, pretrained, seed, log_dir, quick=False, verbose=0, checker="neural"):
    """MLE + unlikelihood + a DPO preference loss (supported over refuted samples)."""
    return fine_tune_with_feedback(task, pretrained, seed, log_dir, quick=quick, verbose=verbose, checker=checker,
                                   preference_weight=1.0)
