"""Where the pretrained models that ship with kfine live."""

import os

from kfine.errors import ModelError

# The default is a keras-hub GPT-2 preset (byte-level BPE), the kind of model
# kfine's users bring: its tokenizer spells any name of a new domain. kfine's
# own WordPiece LM, pretrained on the same corpus, stays as an option
# (`--model saved_models/geonames-lm`): it cannot spell names outside its
# 1410-token vocabulary.
SHIPPED_MODEL = "geonames-gpt2"
WORDPIECE_MODEL = "geonames-lm"


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
