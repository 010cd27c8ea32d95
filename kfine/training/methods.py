"""The registry of fine-tuning methods the bench compares.

A method is a function `(task, pretrained, seed, log_dir, quick, verbose) ->
generator`: it loads the pretrained model from `pretrained`, fine-tunes it on
`task` (a `FactTask`, whose `model_graph` is the only KG it may use), logs to
TensorBoard under `log_dir`, and returns an object with
`generate(prompts, max_new_tokens)` and `model` for evaluation.
"""

import inspect

from kfine.errors import KfineError

_METHODS = {}


def register_method(name):
    """Decorator that makes a method available to `kfine bench --methods`."""

    def register(function):
        if name in _METHODS:
            raise ValueError(f"A method named {name!r} is already registered.")
        _METHODS[name] = function
        return function

    return register


def available_methods():
    _load_builtin_methods()
    return sorted(_METHODS)


def get_method(name):
    """Returns the method registered as `name`; KfineError names the known ones."""
    _load_builtin_methods()
    if name not in _METHODS:
        raise KfineError(f"--methods: unknown method {name!r}; known methods: {', '.join(sorted(_METHODS))}")
    method = _METHODS[name]
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


def _load_builtin_methods():
    # Importing a method's module registers it.
    import kfine.training.baseline  # noqa: F401
    import kfine.training.constraint  # noqa: F401
    import kfine.training.factcheck  # noqa: F401
    import kfine.training.knowledge  # noqa: F401
    import kfine.training.knowledge_add  # noqa: F401
    import kfine.training.adversarial  # noqa: F401
