import json
import os
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kfine.errors import KnowledgeGraphError
from kfine.knowledge.formats import (
    MAX_LINE_LENGTH,
    name_problem,
    read_aliases,
    read_triples,
    write_aliases,
    write_triples,
)

TSV_HEADER = "subject\trelation\tobject\n"
CSV_HEADER = "subject,relation,object\n"






# === Reading valid files ===


def test_read_triples_tsv_strips_fields_and_skips_blank_lines(write_file):
    path = write_file("facts.tsv", TSV_HEADER + "\n France \tcapital\t Paris\r\n\n  \nSpain\tcapital\tMadrid")
    assert read_triples(path) == [("France", "capital", "Paris"), ("Spain", "capital", "Madrid")]


def test_read_triples_accepts_a_byte_order_mark(write_file):
    path = write_file("facts.csv", "\ufeff" + CSV_HEADER + "France,capital,Paris\n")
    assert read_triples(path) == [("France", "capital", "Paris")]


def test_read_triples_csv_understands_quotes(write_file):
    path = write_file("facts.csv", CSV_HEADER + '"Washington, D.C.",country,"United ""States"""\n')
    assert read_triples(path) == [("Washington, D.C.", "country", 'United "States"')]


def test_read_triples_tsv_keeps_quotes_literally(write_file):
    path = write_file("facts.tsv", TSV_HEADER + '"Big" Apple\tnickname of\tNew York\n')
    assert read_triples(path) == [('"Big" Apple', "nickname of", "New York")]


@pytest.mark.parametrize("name", ["facts.jsonl", "facts.json", "FACTS.JSONL"])
def test_read_triples_json_lines_ignores_other_keys(name, write_file):
    lines = [
        json.dumps({"subject": "France", "relation": "capital", "object": " Paris ", "source": "geonames"}),
        "",
        json.dumps({"object": "Madrid", "relation": "capital", "subject": "Spain"}),
    ]
    path = write_file(name, "\n".join(lines) + "\n")
    assert read_triples(path) == [("France", "capital", "Paris"), ("Spain", "capital", "Madrid")]


def test_read_triples_keeps_duplicates_in_file_order(write_file):
    path = write_file("facts.tsv", TSV_HEADER + "b\tr\tc\na\tr\tc\nb\tr\tc\n")
    assert read_triples(path) == [("b", "r", "c"), ("a", "r", "c"), ("b", "r", "c")]


def test_read_aliases_returns_line_numbers(write_file):
    path = write_file("aliases.tsv", "entity\talias\n\nParis\tCity of Light\nBogotá\tBogota\n")
    assert read_aliases(path) == [("Paris", "City of Light", 3), ("Bogotá", "Bogota", 4)]


def test_read_aliases_may_be_empty(write_file):
    assert read_aliases(write_file("aliases.tsv", "entity\talias\n")) == []
    assert read_aliases(write_file("aliases.jsonl", "")) == []


# === Malformed input: one row per case ===

LONG = "x" * (MAX_LINE_LENGTH + 1)
JSON_LINE = '{"subject": "a", "relation": "r", "object": "b"}\n'

MALFORMED_FILES = [
    # (case, file name, content, line of the error, words the message must contain);
    # files named aliases.* are read with read_aliases, the others with read_triples.
    ("unknown extension", "facts.txt", TSV_HEADER + "a\tr\tb\n", None, "unsupported extension '.txt'"),
    ("undecodable byte", "facts.tsv", TSV_HEADER.encode() + b"a\tr\tb\nBad\xff\tr\tb\n", 3, "UTF-8"),
    ("undecodable header", "facts.tsv", b"subj\xe9ct\trelation\tobject\n", 1, "UTF-8"),
    ("wrong header", "facts.tsv", "subj\trel\tobj\na\tr\tb\n", 1, "expected the header"),
    ("header with commas in tsv", "facts.tsv", CSV_HEADER + "a\tr\tb\n", 1, "subject,relation,object"),
    ("header in wrong order", "facts.csv", "object,relation,subject\na,r,b\n", 1, "expected the header"),
    ("missing header", "facts.tsv", "France\tcapital\tParis\n", 1, "found 'France\\tcapital\\tParis'"),
    ("missing header after blank lines", "facts.tsv", "\n\nFrance\tcapital\tParis\n", 3, "expected the header"),
    ("missing column", "facts.tsv", TSV_HEADER + "a\tr\tb\nFrance\tcapital\n", 3, "missing column 'object'"),
    ("missing columns", "facts.tsv", TSV_HEADER + "France\n", 2, "missing column 'relation'"),
    ("extra field", "facts.tsv", TSV_HEADER + "a\tr\tb\tc\n", 2, "1 extra field"),
    ("trailing tab", "facts.tsv", TSV_HEADER + "a\tr\tb\t\n", 2, "extra field"),
    ("empty relation", "facts.tsv", TSV_HEADER + "France\t\tParis\n", 2, "relation is empty"),
    ("blank subject", "facts.tsv", TSV_HEADER + "  \tcapital\tParis\n", 2, "subject is empty"),
    ("empty object", "facts.tsv", TSV_HEADER + "a\tr\tb\nFrance\tcapital\t \n", 3, "object is empty"),
    ("line too long", "facts.tsv", TSV_HEADER + LONG + "\n", 2, "longer than 100,000 characters"),
    ("line too long, no newline", "facts.tsv", TSV_HEADER + "a\tr\t" + "é" * 4 * MAX_LINE_LENGTH, 2, "longer"),
    ("csv missing column", "facts.csv", CSV_HEADER + "France,capital\n", 2, "missing column 'object'"),
    ("csv extra field", "facts.csv", CSV_HEADER + "a,r,b,c,d\n", 2, "2 extra field"),
    ("csv empty field", "facts.csv", CSV_HEADER + 'a,"",b\n', 2, "relation is empty"),
    ("csv unterminated quote", "facts.csv", CSV_HEADER + '"France,capital,Paris\n', 2, "malformed CSV"),
    ("csv field with a tab", "facts.csv", CSV_HEADER + "Fr\tance,capital,Paris\n", 2, "tab or a line break"),
    ("invalid json", "facts.jsonl", JSON_LINE + '{"subject": \n', 2, "invalid JSON"),
    ("json array", "facts.json", f"[{JSON_LINE.strip()}]\n", 1, "found a JSON array"),
    ("json string", "facts.jsonl", '"France capital Paris"\n', 1, "found a JSON string"),
    ("json missing key", "facts.jsonl", '{"subject": "a", "relation": "r"}\n', 1, "missing key 'object'"),
    ("json number value", "facts.jsonl", JSON_LINE.replace('"b"', "3"), 1, "'object' must be a string"),
    ("json null value", "facts.jsonl", '{"subject": null, "relation": "r", "object": "b"}\n', 1, "found a JSON null"),
    ("json empty value", "facts.jsonl", '{"subject": "a", "relation": " ", "object": "b"}\n', 1, "relation is empty"),
    ("json line break", "facts.jsonl", '{"subject": "a\\nb", "relation": "r", "object": "b"}\n', 1, "line break"),
    ("json nested too deeply", "facts.jsonl", "[" * 50_000 + "\n", 1, "invalid JSON"),
    ("empty graph", "facts.tsv", TSV_HEADER, None, "no triples"),
    ("empty file", "facts.tsv", "", None, "no triples"),
    ("blank file", "facts.jsonl", "\n \n\n", None, "no triples"),
    ("aliases wrong header", "aliases.tsv", "entity\tname\nParis\tLutetia\n", 1, "header 'entity\\talias'"),
    ("aliases triples header", "aliases.tsv", TSV_HEADER, 1, "expected the header"),
    ("aliases missing column", "aliases.tsv", "entity\talias\nParis\n", 2, "missing column 'alias'"),
    ("aliases extra field", "aliases.csv", "entity,alias\nParis,Lutetia,Lutèce\n", 2, "extra field"),
    ("aliases empty alias", "aliases.tsv", "entity\talias\nParis\t\n", 2, "alias is empty"),
    ("aliases json missing key", "aliases.jsonl", '{"entity": "Paris", "name": "Lutetia"}\n', 1, "missing key 'alias'"),
    ("aliases undecodable", "aliases.tsv", b"entity\talias\nParis\tLut\xe8ce\n", 2, "UTF-8"),
]


def test_read_triples_rejects_a_missing_file(tmp_path, check_location):
    path = str(tmp_path / "absent.tsv")
    with pytest.raises(KnowledgeGraphError, match="file not found") as info:
        read_triples(path)
    check_location(info.value, path, None)


def test_read_triples_rejects_a_directory(tmp_path, check_location):
    path = str(tmp_path / "facts.tsv")
    os.mkdir(path)
    with pytest.raises(KnowledgeGraphError, match="is a directory") as info:
        read_triples(path)
    check_location(info.value, path, None)


@pytest.mark.parametrize(
    "name, content, line, expected",
    [row[1:] for row in MALFORMED_FILES],
    ids=[row[0] for row in MALFORMED_FILES],
)
def test_readers_reject_malformed_files(name, content, line, expected, write_file, check_location):
    path = write_file(name, content)
    read = read_aliases if name.startswith("aliases") else read_triples
    with pytest.raises(KnowledgeGraphError) as info:
        read(path)
    check_location(info.value, path, line)
    assert expected in str(info.value)


# === Writing ===


@pytest.mark.parametrize("name", ["facts.tsv", "facts.csv", "facts.jsonl"])
def test_write_then_read_triples(tmp_path, name):
    triples = [("Washington, D.C.", "country", 'United "States"'), ("Zürich", "time zone", "Europe/Zurich")]
    path = str(tmp_path / name)
    write_triples(path, triples)
    assert read_triples(path) == triples


def test_write_triples_writes_tsv_with_a_header(tmp_path):
    path = str(tmp_path / "facts.tsv")
    write_triples(path, [("France", "capital", "Paris")])
    with open(path, encoding="utf-8") as stream:
        assert stream.read() == TSV_HEADER + "France\tcapital\tParis\n"


def test_write_then_read_aliases(tmp_path):
    path = str(tmp_path / "aliases.tsv")
    write_aliases(path, [("Paris", "Lutetia"), ("Bogotá", "Bogota")])
    assert read_aliases(path) == [("Paris", "Lutetia", 2), ("Bogotá", "Bogota", 3)]


@pytest.mark.parametrize(
    "record, expected",
    [
        (("a", "r"), "cannot write ('a', 'r'): expected a (subject, relation, object) tuple"),
        (("a", "r", "b\tc"), "cannot write ('a', 'r', 'b\\tc'): object contains a tab"),
        (("a", "r", " b"), "object starts or ends with whitespace"),
        (("a", 3, "b"), "relation is not a string (received int)"),
    ],
)
def test_write_triples_rejects_fields_that_would_not_read_back(tmp_path, record, expected, check_location):
    path = str(tmp_path / "facts.tsv")
    with pytest.raises(KnowledgeGraphError, match="cannot write") as info:
        write_triples(path, [record])
    assert expected in str(info.value)
    check_location(info.value, path, None)
    assert not os.path.exists(path)


def test_name_problem():
    assert name_problem("Andorra la Vella") is None
    assert name_problem("") == "is empty"
    assert name_problem("a\nb") == "contains a tab or a line break"
    assert name_problem("a\u2028b") == "contains a tab or a line break"
    assert "surrogate" in name_problem("a\ud800b")


# === Properties ===

names = st.text(min_size=1, max_size=20).map(str.strip).filter(lambda name: name_problem(name) is None)
extensions = st.sampled_from(["tsv", "csv", "jsonl"])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(triples=st.lists(st.tuples(names, names, names), min_size=1, max_size=8), extension=extensions)
def test_any_valid_triples_survive_a_round_trip(tmp_path, triples, extension):
    path = str(tmp_path / f"facts.{extension}")
    write_triples(path, triples)
    assert read_triples(path) == triples


# Characters that matter to some format, so that random text hits every branch.
structural_text = st.text(alphabet=st.sampled_from('\t\n\r ,"{}[]:\\ab\xe9\u2028'), max_size=200)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    content=st.one_of(
        st.text(max_size=200),
        structural_text,
        structural_text.map(lambda text: TSV_HEADER + text),
        structural_text.map(lambda text: CSV_HEADER + text),
        st.binary(max_size=200),
    ),
    extension=extensions,
)
def test_arbitrary_content_parses_or_raises_a_located_error(content, extension, write_file):
    path = write_file(f"facts.{extension}", content)
    try:
        triples = read_triples(path)
    except KnowledgeGraphError as error:
        assert "\n" not in str(error) and re.match(re.escape(path) + r"(:\d+)?: ", str(error))
    else:
        assert triples and all(name_problem(field) is None for triple in triples for field in triple)
