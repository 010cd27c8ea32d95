"""Fixtures shared by the model, training, evaluation and CLI tests (see people_kg.py).

Helpers live in importable modules (people_kg, layer_test_case): `from
conftest import ...` would be ambiguous with more than one conftest.py.
"""

import pytest

from people_kg import TINY_ARCHITECTURE, write_people_kg


@pytest.fixture(scope="session")
def people_kg_files(tmp_path_factory):
    """The fictional people KG in the generic file format (dict of paths)."""
    return write_people_kg(str(tmp_path_factory.mktemp("people_kg")))


@pytest.fixture(scope="session")
def people_task(people_kg_files):
    """A `FactTask` over the people KG (split seed 0, full size)."""
    from kfine.evaluation.task import FactTask

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
def pretrained_dir(people_task, tmp_path_factory):
    """A tiny model pretrained on the people KG's pretrain split, saved with `save_model`."""
    from kfine.training.pretrain import pretrain

    out_dir = str(tmp_path_factory.mktemp("pretrained") / "people-lm")
    pretrain(people_task, out_dir, epochs=8, architecture=TINY_ARCHITECTURE, vocabulary_size=200, verbose=0,
             command="pytest")
    return out_dir


@pytest.fixture(scope="module")
def short_baseline():
    """The baseline's quick fine-tune cut to 3 epochs: bench tests check the harness, not accuracy."""
    from kfine.training import baseline

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(baseline, "QUICK_EPOCHS", 3)
        yield


@pytest.fixture
def tiny_model(people_tokenizer):
    """A fresh, untrained tiny `CausalLanguageModel` with the people tokenizer."""
    from kfine.models.causal_lm import build_causal_lm

    return build_causal_lm(people_tokenizer.vocabulary, dropout=0.0, **TINY_ARCHITECTURE)
