"""The table of fine-tuning methods that `kfine bench` compares and `kfine finetune` runs.

A method is a function `(task, pretrained, seed, log_dir, quick, verbose) ->
generator`: it loads the pretrained model from `pretrained`, fine-tunes it on
`task` (a `FactTask`, whose `model_graph` is the only KG it may use), logs to
TensorBoard under `log_dir`, and returns an object with
`generate(prompts, max_new_tokens)` and `model` for evaluation.

The built-in methods are listed in `BUILTIN_METHODS`; this module imports
their modules and none of them imports it back. A user-defined method joins
them with `register_method`.
"""

import inspect

from kfine.errors import KfineError
from kfine.training.adversarial import fine_tune_adversarial
from kfine.training.baseline import fine_tune_baseline
from kfine.training.constraint import fine_tune_constraint
from kfine.training.factcheck import fine_tune_factcheck, fine_tune_factcheck_preference
from kfine.training.knowledge import fine_tune_knowledge
from kfine.training.knowledge_add import fine_tune_knowledge_add
from kfine.training.knowledge_feedback import fine_tune_knowledge_factcheck

BUILTIN_METHODS = {
    "baseline": fine_tune_baseline,
    "knowledge": fine_tune_knowledge,
    "knowledge_add": fine_tune_knowledge_add,
    "constraint": fine_tune_constraint,
    "adversarial": fine_tune_adversarial,
    "factcheck": fine_tune_factcheck,
    "factcheck-dpo": fine_tune_factcheck_preference,
    "knowledge+factcheck": fine_tune_knowledge_factcheck,
}

# Methods added by users with `register_method`.
_USER_METHODS = {}


def register_method(name):
    """Decorator that makes a user-defined method available to `kfine bench --methods` and `kfine finetune`.

    Example:

    >>> @register_method("my_method")
    ... def fine_tune_mine(task, pretrained, seed, log_dir, quick=False, verbose=0):
    ...     ...
    """

    def register(function):
        if name in BUILTIN_METHODS or name in _USER_METHODS:
            raise ValueError(f"A method named {name!r} is already registered.")
        _USER_METHODS[name] = function
        return function

    return register


def available_methods():
    return sorted({**BUILTIN_METHODS, **_USER_METHODS})


def get_method(name):
    """Returns the method named `name`; KfineError names the known ones."""
    method = BUILTIN_METHODS.get(name, _USER_METHODS.get(name))
    if method is None:
        raise KfineError(f"--methods: unknown method {name!r}; known methods: {', '.join(available_methods())}")
    _check_signature(name, method)
    return method


# Every method is called with these keyword arguments (see the module docstring).
METHOD_PARAMETERS = ("task", "pretrained", "seed", "log_dir", "quick", "verbose")


def _check_signature(name, method):
    """KfineError (one line) when `method` cannot be called as a method is called."""
    try:
        inspect.signature(method).bind(**{parameter: None for parameter in METHOD_PARAMETERS})
    except TypeError as error:
        raise KfineError(
            f"method {name!r}: {getattr(method, '__qualname__', method)} is registered but cannot be called "
            f"as a method ({error}); a method takes {', '.join(METHOD_PARAMETERS)}"
        ) from None


def method_options(name, init_embeddings=None):
    """The optional keyword arguments to pass method `name`; KfineError if it does not take one given.

    Args:
        name: str. A registered method.
        init_embeddings: str or None. A `kfine kg embed` embeddings directory.
    """
    options = {"init_embeddings": init_embeddings} if init_embeddings is not None else {}
    parameters = inspect.signature(get_method(name)).parameters
    for option in options:
        if option not in parameters:
            raise KfineError(f"--{option.replace('_', '-')}: method {name!r} does not take it")
    return options

