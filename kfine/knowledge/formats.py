"""Reading and writing knowledge-graph files: triples and aliases.

Both are tables with a fixed header, one record a line, in one of three
formats chosen by the file's extension:

- `.tsv`: tab-separated, header `subject<TAB>relation<TAB>object`
  (aliases: `entity<TAB>alias`); quotes are ordinary characters.
- `.csv`: comma-separated as Python's `csv` module reads it, same header;
  quoted fields may hold commas but not line breaks (one record a line).
- `.jsonl` or `.json`: JSON Lines, one object a line with the header's names
  as keys and strings as values; other keys are ignored.

Fields are stripped of surrounding whitespace and blank lines are skipped.
Every malformed input raises `KnowledgeGraphError` with a one-line message
that names the file, the 1-based line and what was expected there, so users
can fix their data without reading a traceback.
"""

import csv
import json
import os

from kfine.errors import KnowledgeGraphError, located
from kfine.io import atomic_file

TRIPLE_COLUMNS = ("subject", "relation", "object")
ALIAS_COLUMNS = ("entity", "alias")
MAX_LINE_LENGTH = 100_000

_FORMAT_OF_EXTENSION = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}
# UTF-8 takes at most 4 bytes a character; 3 more leave room for "\r\n" and
# make a line that fills the whole read longer than MAX_LINE_LENGTH for sure.
_MAX_LINE_BYTES = 4 * MAX_LINE_LENGTH + 3
_PREVIEW_LENGTH = 60


def read_triples(path):
    """Reads a triples file into a list of `(subject, relation, object)`.

    Args:
        path: str. A `.tsv`, `.csv`, `.jsonl` or `.json` file (see the module
            docstring for the layouts).

    Returns:
        A list of `(subject, relation, object)` string tuples in file order,
        duplicates included.

    Raises:
        KnowledgeGraphError: the file is missing, malformed, or holds no triple.

    Example:

    >>> read_triples("facts.tsv")  # doctest: +SKIP
    [('France', 'capital', 'Paris'), ('France', 'continent', 'Europe')]
    """
    triples = [fields for _, fields in _read_records(path, TRIPLE_COLUMNS)]
    if not triples:
        raise KnowledgeGraphError(located(path, None, "holds no triples; a knowledge graph needs at least one"))
    return triples


def read_aliases(path):
    """Reads an aliases file into a list of `(entity, alias, line_number)`.

    The line numbers let `KnowledgeGraph.from_files` point at the line of an
    alias that does not fit the graph (an unknown entity, an ambiguous alias).

    Args:
        path: str. A `.tsv`, `.csv`, `.jsonl` or `.json` file with the columns
            `entity` and `alias`. It may hold no alias at all.

    Returns:
        A list of `(entity, alias, line_number)` tuples in file order.

    Raises:
        KnowledgeGraphError: the file is missing or malformed.
    """
    return [(entity, alias, line) for line, (entity, alias) in _read_records(path, ALIAS_COLUMNS)]


def write_triples(path, triples):
    """Writes triples with a header, atomically, in the format of `path`'s extension.

    Args:
        path: str. Where to write; `.tsv` is the canonical format.
        triples: iterable of `(subject, relation, object)` strings.

    Raises:
        KnowledgeGraphError: a field cannot be stored (see `name_problem`).
    """
    _write_records(path, TRIPLE_COLUMNS, triples)


def write_aliases(path, pairs):
    """Writes `(entity, alias)` pairs with a header, atomically, like `write_triples`."""
    _write_records(path, ALIAS_COLUMNS, pairs)


def name_problem(name):
    """Says why `name` cannot be an entity, relation or alias name, or returns None.

    Names must survive a round trip through every format: non-empty strings
    without surrounding whitespace, tabs or line breaks, encodable as UTF-8.

    Example:

    >>> name_problem("Paris") is None
    True
    >>> name_problem(" Paris")
    'starts or ends with whitespace'
    """
    if not isinstance(name, str):
        return f"is not a string (received {type(name).__name__})"
    if not name.strip():
        return "is empty"
    if name != name.strip():
        return "starts or ends with whitespace"
    if "\t" in name or len(name.splitlines()) > 1:
        return "contains a tab or a line break"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (it holds a lone surrogate)"
    return None


def record_problem(columns, record):
    """Says what is wrong with `record` as a row of `columns`, or returns None.

    Example:

    >>> record_problem(TRIPLE_COLUMNS, ("France", "capital", ""))
    'object is empty'
    """
    if not isinstance(record, (tuple, list)) or len(record) != len(columns):
        return f"expected a ({', '.join(columns)}) tuple of strings, received {_preview(record)}"
    for column, field in zip(columns, record):
        problem = name_problem(field)
        if problem:
            return f"{column} {problem}"
    return None


def _format_of(path):
    extension = os.path.splitext(path)[1].lower()
    if extension not in _FORMAT_OF_EXTENSION:
        raise KnowledgeGraphError(
            located(path, None, f"unsupported extension {extension!r}; expected .tsv, .csv, .jsonl or .json")
        )
    return _FORMAT_OF_EXTENSION[extension]


def _read_records(path, columns):
    """Returns `[(line_number, fields_tuple), ...]` of a table file."""
    file_format = _format_of(path)
    try:
        stream = open(path, "rb")
    except FileNotFoundError:
        raise KnowledgeGraphError(located(path, None, "file not found")) from None
    except IsADirectoryError:
        raise KnowledgeGraphError(located(path, None, "is a directory, expected a file")) from None
    except OSError as error:
        raise KnowledgeGraphError(located(path, None, f"cannot be read ({error.strerror})")) from None
    # JSON Lines name the columns on every line instead of in a header.
    header_seen = file_format == "jsonl"
    records = []
    with stream:
        for line_number, text in _lines(path, stream):
            if not text.strip():
                continue
            if header_seen:
                records.append((line_number, _parse_record(path, line_number, text, columns, file_format)))
            else:
                _check_header(path, line_number, text, columns, file_format)
                header_seen = True
    return records


def _lines(path, stream):
    """Yields `(line_number, text)`, decoding line by line to locate bad bytes."""
    line_number = 0
    while True:
        raw = stream.readline(_MAX_LINE_BYTES)
        if not raw:
            return
        line_number += 1
        if len(raw) == _MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raise KnowledgeGraphError(located(path, line_number, _too_long()))
        # A byte-order mark (as Excel writes) is not part of the header.
        encoding = "utf-8-sig" if line_number == 1 else "utf-8"
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as error:
            message = (
                f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at byte {error.start + 1} of the line); "
                "save the file as UTF-8"
            )
            raise KnowledgeGraphError(located(path, line_number, message)) from None
        text = text.rstrip("\r\n")
        if len(text) > MAX_LINE_LENGTH:
            raise KnowledgeGraphError(located(path, line_number, _too_long()))
        yield line_number, text


def _too_long():
    return f"line is longer than {MAX_LINE_LENGTH:,} characters; expected one record a line"


def _split(path, line_number, text, file_format):
    if file_format == "tsv":
        return [field.strip() for field in text.split("\t")]
    try:
        return [field.strip() for field in next(csv.reader([text], strict=True))]
    except csv.Error as error:
        raise KnowledgeGraphError(located(path, line_number, f"malformed CSV ({error})")) from None


def _separator(file_format):
    return "tab" if file_format == "tsv" else "comma"


def _check_header(path, line_number, text, columns, file_format):
    if tuple(_split(path, line_number, text, file_format)) == columns:
        return
    separator = "\t" if file_format == "tsv" else ","
    message = (
        f"expected the header {separator.join(columns)!r} ({_separator(file_format)}-separated), "
        f"found {_preview(text)}"
    )
    raise KnowledgeGraphError(located(path, line_number, message))


def _parse_record(path, line_number, text, columns, file_format):
    if file_format == "jsonl":
        fields = _json_fields(path, line_number, text, columns)
    else:
        fields = _split(path, line_number, text, file_format)
        expected = f"expected {len(columns)} {_separator(file_format)}-separated fields ({', '.join(columns)})"
        if len(fields) < len(columns):
            message = f"missing column {columns[len(fields)]!r}: {expected}, found {len(fields)}"
            raise KnowledgeGraphError(located(path, line_number, message))
        if len(fields) > len(columns):
            message = f"{len(fields) - len(columns)} extra field(s): {expected}, found {len(fields)}"
            raise KnowledgeGraphError(located(path, line_number, message))
    problem = record_problem(columns, fields)
    if problem:
        raise KnowledgeGraphError(located(path, line_number, problem))
    return tuple(fields)


def _json_fields(path, line_number, text, columns):
    expected = f"expected one JSON object per line with the string keys {', '.join(columns)}"
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        message = f"invalid JSON ({error.msg}, column {error.colno}); {expected}"
        raise KnowledgeGraphError(located(path, line_number, message)) from None
    except RecursionError:
        message = f"invalid JSON (nested too deeply); {expected}"
        raise KnowledgeGraphError(located(path, line_number, message)) from None
    if not isinstance(record, dict):
        message = f"{expected}, found a JSON {_json_type(record)}"
        raise KnowledgeGraphError(located(path, line_number, message))
    fields = []
    for column in columns:
        if column not in record:
            message = f"missing key {column!r}; {expected}"
            raise KnowledgeGraphError(located(path, line_number, message))
        if not isinstance(record[column], str):
            message = f"{column!r} must be a string, found a JSON {_json_type(record[column])}"
            raise KnowledgeGraphError(located(path, line_number, message))
        fields.append(record[column].strip())
    return fields


def _json_type(value):
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names[type(value)]


def _preview(value):
    """A one-line, bounded rendering of user data for error messages."""
    text = " ".join(repr(value).split())
    if len(text) > _PREVIEW_LENGTH:
        return text[:_PREVIEW_LENGTH] + "..."
    return text


def _write_records(path, columns, records):
    file_format = _format_of(path)
    rows = [tuple(record) if isinstance(record, list) else record for record in records]
    for row in rows:
        problem = record_problem(columns, row)
        if problem:
            raise KnowledgeGraphError(located(path, None, f"cannot write {_preview(row)}: {problem}"))
    with atomic_file(path) as stream:
        if file_format == "jsonl":
            for row in rows:
                stream.write(json.dumps(dict(zip(columns, row)), ensure_ascii=False) + "\n")
        elif file_format == "tsv":
            # TSV never quotes: its fields hold no tab or line break (name_problem).
            for row in (columns, *rows):
                stream.write("\t".join(row) + "\n")
        else:
            writer = csv.writer(stream, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows(rows)
