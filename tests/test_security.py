"""Security: model files are data (safe mode, no pickle, nothing evaluated), and artifact folders are
read only inside themselves."""

import ast
import os
import pathlib
import shutil
import zipfile

import keras
import pytest

from kfine.errors import KfineError, KnowledgeGraphError, ModelError
from kfine.knowledge.graph import KnowledgeGraph
from kfine.knowledge.templates import Templates
from kfine.models.loading import load_model, save_model
from kfine.training.finetune import FINE_TUNED_KIND, KNOWLEDGE_GRAPH_DIR, load_fine_tuned

REPOSITORY = pathlib.Path(__file__).resolve().parent.parent
SOURCES = sorted([*REPOSITORY.joinpath("kfine").rglob("*.py"), *REPOSITORY.joinpath("layers").rglob("*.py")])
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "marshal", "shelve"}


def _dense_file(path):
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(path)


def _with_config(source, target, old, new):
    """Copies a .keras archive, replacing `old` by `new` in its config.json."""
    with zipfile.ZipFile(source) as reader, zipfile.ZipFile(target, "w") as writer:
        for item in reader.infolist():
            content = reader.read(item.filename)
            if item.filename == "config.json":
                assert old in content
                content = content.replace(old, new)
            writer.writestr(item, content)


@pytest.fixture
def fine_tuned_dir(people_task, pretrained_dir, tmp_path):
    directory = str(tmp_path / "fine-tuned")
    graph = people_task.model_graph
    save_model(load_model(pretrained_dir), directory,
               metadata={"kind": FINE_TUNED_KIND, "kg_fingerprint": graph.fingerprint(), "pretrained": "/etc"},
               write_extra=lambda staging: graph.save(os.path.join(staging, KNOWLEDGE_GRAPH_DIR)))
    return directory


def test_no_source_file_uses_pickle_eval_or_exec():
    assert len(SOURCES) > 30
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not {alias.name.split(".")[0] for alias in node.names} & UNSAFE_MODULES, path
            elif isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] not in UNSAFE_MODULES, path
            elif isinstance(node, ast.Call):
                assert not (isinstance(node.func, ast.Name) and node.func.id in {"eval", "exec", "compile"}), path
                for keyword in node.keywords:
                    assert not (keyword.arg in {"allow_pickle", "safe_mode"} and
                                isinstance(keyword.value, ast.Constant) and
                                keyword.value.value is (keyword.arg == "allow_pickle")), f"{path}:{node.lineno}"


def test_a_class_nobody_registered_is_refused_and_never_imported(tmp_path):
    """The config names `os.system` as a layer class; loading must fail without calling it."""
    source, target = str(tmp_path / "dense.keras"), str(tmp_path / "evil.keras")
    marker = tmp_path / "ran"
    _dense_file(source)
    _with_config(source, target, b'"module": "keras.layers", "class_name": "Dense", "config": {',
                 b'"module": "os", "class_name": "system", "config": {"command": "touch '
                 + str(marker).encode() + b'", ')
    with pytest.raises(ModelError, match="cannot load the model") as raised:
        load_model(target)
    assert "\n" not in str(raised.value)
    assert not marker.exists()


def test_a_fine_tuned_folder_with_a_lambda_layer_is_refused(fine_tuned_dir, tmp_path):
    keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2)]).save(
        os.path.join(fine_tuned_dir, "model.keras"))
    with pytest.raises(ModelError, match="Lambda"):
        load_fine_tuned(fine_tuned_dir)


def test_paths_recorded_in_metadata_are_not_followed(fine_tuned_dir):
    # training.json says "pretrained": "/etc"; loading reads only the folder itself.
    generator = load_fine_tuned(fine_tuned_dir)
    assert generator.model is not None


@pytest.mark.parametrize("planted", ["model.keras", "training.json", f"{KNOWLEDGE_GRAPH_DIR}/triples.tsv",
                                     KNOWLEDGE_GRAPH_DIR])
def test_links_leading_outside_an_artifact_folder_are_refused(fine_tuned_dir, tmp_path, planted):
    outside = tmp_path / "outside"
    shutil.copytree(fine_tuned_dir, outside)
    target = os.path.join(fine_tuned_dir, planted)
    shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
    os.symlink(os.path.join(outside, planted), target)
    with pytest.raises((ModelError, KnowledgeGraphError), match="leads outside") as raised:
        load_fine_tuned(fine_tuned_dir)
    assert "\n" not in str(raised.value)


def test_links_inside_the_folder_are_fine(people_task, tmp_path):
    directory = tmp_path / "kg"
    people_task.model_graph.save(str(directory))
    os.rename(directory / "triples.tsv", directory / "facts.tsv")
    os.symlink("facts.tsv", directory / "triples.tsv")
    assert KnowledgeGraph.load(str(directory)) == people_task.model_graph


def test_templates_are_data_never_formatted_or_evaluated():
    template = "{subject} is {object} {__import__('os').system('false')} {0.__class__} {subject!r}"
    templates = Templates({"r": [template]})
    assert Templates.fill(templates.templates("r")[0], "A", "B") == (
        "A is B {__import__('os').system('false')} {0.__class__} {subject!r}")
    with pytest.raises(KfineError, match="must contain {object} exactly once"):
        Templates({"r": ["{subject} is {object.__class__}"]})
