"""Where the pretrained model that ships with kfine lives."""

import os

from kfine.errors import ModelError

# The default stays kfine's own WordPiece LM until the bench has measured
# every method on the GPT-2 preset that ships beside it (a keras-hub preset
# with byte-level BPE, pretrained on the same corpus: `--model` takes it).
SHIPPED_MODEL = "geonames-lm"
GPT2_PRESET = "geonames-gpt2"


def shipped_model_path(name=SHIPPED_MODEL):
    """Returns the directory of the shipped model `name`.

    It is `saved_models/<name>` in a source checkout (and editable installs)
    and `kfine/saved_models/<name>` in a wheel.
    """
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for root in (os.path.join(package, "saved_models"), os.path.join(os.path.dirname(package), "saved_models")):
        candidate = os.path.join(root, name)
        if os.path.isdir(candidate):
            return candidate
    raise ModelError(f"the shipped model {name!r} is missing from saved_models/; pass --model DIR")
