"""Bundled real knowledge graphs, from data that installed packages ship (nothing is downloaded)."""

from kfine.datasets.geonames import build_geonames, write_geonames
from kfine.datasets.languages import build_languages, write_languages

# name -> (build() -> (KnowledgeGraph, Templates), write(out_dir) -> paths)
DATASETS = {
    "geonames": (build_geonames, write_geonames),
    "languages": (build_languages, write_languages),
}
