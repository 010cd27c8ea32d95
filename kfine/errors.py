"""The exceptions kfine raises for bad input.

Every error a user can cause (a malformed file, an unknown relation, a bad flag)
is a `KfineError`, so callers can catch one class and the CLI can print the
one-line message and exit with status 2 instead of a traceback.
"""


class KfineError(Exception):
    """Base class of every error kfine raises for bad input."""


class KnowledgeGraphError(KfineError):
    """A knowledge-graph file (triples or aliases) is malformed."""


class TemplateError(KfineError):
    """A templates file is malformed or does not fit the knowledge graph."""


class ModelError(KfineError):
    """A model directory or file is missing, of the wrong kind, or corrupt."""


def located(path, line, message):
    """Formats `message` with the file and line it refers to.

    `line` is 1-based; pass `None` when the problem concerns the whole file.
    """
    if line is None:
        return f"{path}: {message}"
    return f"{path}:{line}: {message}"


def first_line(error):
    """The first line of an exception's message (its type name if it has none), for one-line reports."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
