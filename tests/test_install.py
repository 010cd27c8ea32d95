"""Packaging: the top-level layers/ folder is `kfine.layers`, installed and from a checkout.

A fresh virtual environment gets kfine's dependencies from the environment
running the tests (a `.pth` file naming its site-packages, so nothing is
downloaded), then a regular, non-editable install of kfine.
"""

import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Enough to check the import path; importing kfine also starts TensorFlow.
PROBE = (
    "import kfine.layers, kfine, kfine.models.shipped as shipped; "
    "print(kfine.layers.LanguageModelHead.__module__); print(kfine.__file__); print(kfine.layers.__file__); "
    "print(shipped.shipped_model_path())"
)


def _clean_environment():
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    environment["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return environment


def _files_under(directory):
    return sorted(os.path.relpath(os.path.join(root, name), directory)
                  for root, _, names in os.walk(directory) for name in names)


def _run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory):
    """A new venv without kfine that sees this environment's packages; returns (python, site-packages)."""
    root = tmp_path_factory.mktemp("install")
    venv = str(root / "venv")
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = os.path.join(venv, "bin", "python")
    venv_site_packages = _run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env=_clean_environment()
    ).stdout.strip()
    # A plain path line: the directory's own .pth files (among them the
    # editable-install hook of kfine) are not processed, so kfine stays absent.
    with open(os.path.join(venv_site_packages, "dependencies.pth"), "w", encoding="utf-8") as stream:
        stream.write(sysconfig.get_paths()["purelib"] + "\n")
    return python, venv_site_packages


def _is_under(path, directory):
    return os.path.commonpath([os.path.realpath(path), os.path.realpath(directory)]) == os.path.realpath(directory)


@pytest.mark.slow
def test_layers_import_from_a_checkout_without_install(fresh_venv):
    python, _ = fresh_venv
    absent = subprocess.run([python, "-c", "import kfine"], capture_output=True, text=True, cwd="/",
                            env=_clean_environment(), timeout=600)
    assert absent.returncode != 0 and "No module named 'kfine'" in absent.stderr
    environment = {**_clean_environment(), "PYTHONPATH": REPOSITORY}
    result = _run([python, "-c", PROBE], cwd=REPOSITORY, env=environment)
    module, kfine_file, layers_file, model_dir = result.stdout.split()
    assert module == "kfine.layers.language_model_head"
    assert kfine_file == os.path.join(REPOSITORY, "kfine", "__init__.py")
    assert layers_file == os.path.join(REPOSITORY, "layers", "__init__.py")
    assert model_dir == os.path.join(REPOSITORY, "saved_models", "geonames-gpt2")


@pytest.mark.slow
def test_non_editable_install_provides_kfine_layers(fresh_venv, tmp_path):
    python, venv_site_packages = fresh_venv
    # Build from a copy: pip builds in the source tree, and the checkout is shared.
    source = str(tmp_path / "source")
    shutil.copytree(REPOSITORY, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "runs", "demo_out", ".pytest_cache",
        ".hypothesis", "tests", "examples"))
    # --ignore-installed: pip must not even consider the editable kfine of the
    # environment whose packages this venv borrows.
    _run([python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "--ignore-installed",
          "--quiet", source], env=_clean_environment(), cwd=str(tmp_path))
    installed = os.listdir(venv_site_packages)
    assert "kfine" in installed and any(name.startswith("kfine-0.1.0") for name in installed)
    assert not any(name.startswith("__editable__") for name in installed)
    assert os.path.isfile(os.path.join(venv_site_packages, "kfine", "layers", "language_model_head.py"))

    outside = str(tmp_path / "elsewhere")
    os.makedirs(outside)
    result = _run([python, "-c", PROBE], cwd=outside, env=_clean_environment())
    module, kfine_file, layers_file, model_dir = result.stdout.split()
    assert module == "kfine.layers.language_model_head"
    assert _is_under(kfine_file, venv_site_packages) and _is_under(layers_file, venv_site_packages)
    # The shipped model is package data: the wheel carries it, not the checkout.
    assert _is_under(model_dir, os.path.join(venv_site_packages, "kfine", "saved_models"))
    shipped = os.path.join(REPOSITORY, "saved_models", "geonames-gpt2")
    assert _files_under(model_dir) == _files_under(shipped)  # the preset's assets/tokenizer/ too
    assert not _is_under(kfine_file, REPOSITORY) and not _is_under(layers_file, REPOSITORY)

    script = os.path.join(os.path.dirname(python), "kfine")
    assert os.path.isfile(script)
    assert _run([script, "--help"], cwd=outside, env=_clean_environment()).stdout.startswith("usage: kfine")
