"""Fixtures shared by the model, training, evaluation and CLI tests (see people_kg.py).

Helpers live in importable modules (people_kg, layer_test_case): `from
conftest import ...` would be ambiguous with more than one conftest.py.
"""

import dataclasses
import fcntl
import os
import sys

import pytest

from people_kg import TINY_ARCHITECTURE, people_kg_paths, write_people_kg


def pytest_collection_modifyitems(items):
    """Runs the modules with a `slow` test first, each module's tests in their order.

    Under pytest-xdist (`make test`) whole modules go to the workers in this
    order (`--dist loadfile`), so the long ones start early and the many short
    ones fill in at the end, instead of one long module finishing alone.
    """
    slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.module.__name__ not in slow_modules)  # stable: keeps the order within


def shared_once(tmp_path_factory, name, create):
    """Returns the path `name`, made by `create(path)` once per run: pytest-xdist workers share it.

    The first worker to get the lock creates it; the others wait for it. Without
    xdist it is simply a path in the run's temporary folder.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above the workers' own
    path, done = str(root / name), str(root / f"{name}.done")
    with open(str(root / f"{name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(done):
            create(path)
            open(done, "w").close()
    return path


@pytest.fixture(scope="session")
def people_kg_files(tmp_path_factory):
    """The fictional people KG in the generic file format (dict of paths)."""
    return people_kg_paths(shared_once(tmp_path_factory, "people_kg", write_people_kg))


@pytest.fixture(scope="session")
def people_task(people_kg_files):
    """A `FactTask` over the people KG (split seed 0, full size)."""
    from kfine.knowledge.task import FactTask

    return FactTask.from_files(**people_kg_files)


@pytest.fixture(scope="session")
def people_tokenizer(people_task):
    """A WordPiece tokenizer learned from every sentence of the people KG."""
    from kfine.models.tokenizer import WordPieceTokenizer

    graph = people_task.knowledge_graph
    sentences = people_task.verbalizer.sentences(graph.triples, which="all")
    names = [name for entity in graph.entities for name in graph.names(entity)]
    return WordPieceTokenizer.learn(sentences, vocabulary_size=200, coverage_texts=names)


@pytest.fixture(scope="session")
def tiny_gpt2_preset(people_task, tmp_path_factory):
    """A tiny keras-hub GPT-2 preset (random weights, byte-level BPE learned from the people KG), shared.

    What stands for the shipped default model, itself a GPT-2 preset.
    """
    from presets import write_tiny_preset

    def create(folder):
        write_tiny_preset("gpt2", people_task, folder)

    return shared_once(tmp_path_factory, "tiny_gpt2_preset", create)


@pytest.fixture(scope="session")
def pretrained_dir(people_task, tmp_path_factory):
    """A tiny model pretrained on the people KG's pretrain split, saved with `save_model`.

    Pretrained once per run: pytest-xdist workers share it (tests only read it).
    """
    from kfine.training.pretrain import pretrain

    def create(out_dir):
        pretrain(people_task, out_dir, epochs=8, architecture=TINY_ARCHITECTURE, vocabulary_size=200, verbose=0,
                 command="pytest")

    return shared_once(tmp_path_factory, "people-lm", create)


@pytest.fixture(scope="session")
def people_sample(people_kg_files, pretrained_dir, tmp_path_factory):
    """`kfine kg sample` of the people model KG (quick task, the tiny model's split): its output directory.

    The corpus is examples/graph_sampled_training.py's: the fine-tuning
    sentences and the held-out prompts (the knowledge method needs every
    fine-tuning fact in its KG). Sampled once per run, since each sample starts
    a TF-GNN process and a Beam pipeline.
    """
    from kfine.cli import main
    from kfine.knowledge.task import QUICK, FactTask
    from kfine.models.loading import load_metadata

    def create(out_dir):
        split_seed = load_metadata(pretrained_dir)["split_seed"]
        task = FactTask.from_files(**people_kg_files, split_seed=split_seed, size=QUICK)
        task.model_graph.save(f"{out_dir}-kg")
        with open(f"{out_dir}-corpus.txt", "w", encoding="utf-8") as stream:
            stream.writelines(f"{line}\n" for line in [
                *task.finetune_sentences, *(prompt.text for prompt, _ in task.evaluation_prompts("heldout"))])
        assert main(["kg", "sample", "--triples", f"{out_dir}-kg/triples.tsv", "--corpus", f"{out_dir}-corpus.txt",
                     "--out", out_dir]) == 0

    return shared_once(tmp_path_factory, "people-sample", create)


@pytest.fixture(scope="module")
def short_baseline():
    """The baseline's quick fine-tune cut to 3 epochs: bench tests check the harness, not accuracy."""
    from kfine.training import baseline

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(baseline, "QUICK_EPOCHS", 3)
        yield


@pytest.fixture(scope="module")
def tiny_methods():
    """Every method's quick configuration cut to one epoch and one feedback round: the plumbing, not accuracy.

    Sets each `*QUICK_EPOCHS`, `QUICK*ROUNDS` and `MIN_STEPS*` int and each
    quick `FeedbackConfig` of every kfine module once the methods are
    registered, so a new method that keeps the convention is shortened the day
    it is registered.
    """
    from kfine.training.feedback.config import FeedbackConfig
    from kfine.training.methods import available_methods

    available_methods()  # imports the methods' modules
    modules = [module for name, module in list(sys.modules.items()) if name.startswith("kfine.")]
    with pytest.MonkeyPatch.context() as patch:
        for module in modules:
            for name, value in vars(module).items():
                shortened = (name.endswith("QUICK_EPOCHS") or name.startswith("MIN_STEPS")
                             or name.startswith("QUICK") and name.endswith("ROUNDS"))
                if shortened and isinstance(value, int):
                    patch.setattr(module, name, 1)
                elif name.startswith("QUICK") and isinstance(value, FeedbackConfig):
                    patch.setattr(module, name, dataclasses.replace(value, rounds=1, samples_per_prompt=1,
                                                                    epochs_per_round=1))
        yield


@pytest.fixture
def tiny_model(people_tokenizer):
    """A fresh, untrained tiny `CausalLanguageModel` with the people tokenizer."""
    from kfine.models.causal_lm import build_causal_lm

    return build_causal_lm(people_tokenizer.vocabulary, dropout=0.0, **TINY_ARCHITECTURE)
