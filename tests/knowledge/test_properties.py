"""Property-based tests (hypothesis): whatever the input, the KG parsers, the verbalizer and the
EntityLinker either work or raise a `KfineError`; nothing else escapes."""

import json
import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kfine.errors import KfineError
from kfine.knowledge.formats import name_problem, read_aliases, read_triples
from kfine.knowledge.graph import KnowledgeGraph
from kfine.knowledge.linker import EntityLinker
from kfine.knowledge.templates import Templates
from kfine.knowledge.verbalizer import Verbalizer

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Text that often hits the parsers' special characters: separators, quotes, braces, line breaks, BOMs.
tricky_text = st.lists(st.sampled_from(list("ab \t,\"'{}\n\r\ufeff\\é_") + ["{subject}", "{object}"]),
                      max_size=20).map("".join)
any_text = st.one_of(tricky_text, st.text(max_size=30))
# Data a JSON file may hold.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | any_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=12,
)
# Names a KG accepts: words of a small alphabet, so generated texts mention them often.
names = st.lists(st.sampled_from(["Ana", "Bo", "Bo Ana", "Cy", "de", "Éva", "x-y", "O'Neil", "a_b"]), min_size=1,
                 max_size=3).map(" ".join)


def _read_file(reader, extension, content):
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "file" + extension)
        with open(path, "wb") as stream:
            stream.write(content)
        return reader(path)


file_contents = st.one_of(
    st.binary(max_size=200),
    st.lists(any_text, max_size=6).map(lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass")),
    st.lists(json_values, max_size=4).map(lambda rows: "\n".join(json.dumps(row) for row in rows).encode()),
    st.lists(st.tuples(any_text, any_text, any_text), max_size=5).map(
        lambda rows: ("subject\trelation\tobject\n"
                      + "\n".join("\t".join(row) for row in rows)).encode("utf-8", "surrogatepass")),
)


@SETTINGS
@given(content=file_contents, extension=st.sampled_from([".tsv", ".csv", ".jsonl", ".json", ".txt"]))
def test_triples_parser_returns_clean_triples_or_raises_kfine_error(content, extension):
    try:
        triples = _read_file(read_triples, extension, content)
    except KfineError as error:
        assert "\n" not in str(error)
        return
    assert triples
    for triple in triples:
        assert len(triple) == 3 and all(name_problem(field) is None for field in triple)


@SETTINGS
@given(content=file_contents, extension=st.sampled_from([".tsv", ".csv", ".jsonl"]))
def test_aliases_parser_returns_pairs_or_raises_kfine_error(content, extension):
    try:
        aliases = _read_file(read_aliases, extension, content)
    except KfineError:
        return
    for entity, alias, line in aliases:
        assert name_problem(entity) is None and name_problem(alias) is None and line >= 1


@SETTINGS
@given(triples=st.lists(st.tuples(any_text, any_text, any_text), max_size=5),
       aliases=st.lists(st.tuples(any_text, any_text), max_size=3))
def test_knowledge_graph_from_arbitrary_records(triples, aliases):
    try:
        graph = KnowledgeGraph(triples, aliases)
    except KfineError:
        return
    assert graph.num_triples == len(set(triples))
    with tempfile.TemporaryDirectory() as directory:
        if graph.num_triples:
            graph.save(os.path.join(directory, "kg"))
            assert KnowledgeGraph.load(os.path.join(directory, "kg")) == graph


@SETTINGS
@given(mapping=json_values)
def test_templates_from_arbitrary_json(mapping):
    try:
        templates = Templates(mapping)
    except KfineError:
        return
    for relation in templates.relations:
        for template in templates.templates(relation):
            assert Templates.fill(template, "S", "O").startswith(Templates.prompt(template, "S"))


@SETTINGS
@given(content=st.one_of(st.binary(max_size=120), json_values.map(lambda value: json.dumps(value).encode())))
def test_templates_file_parser(content):
    try:
        _read_file(Templates.from_file, ".json", content)
    except KfineError as error:
        assert "\n" not in str(error)


@SETTINGS
@given(before=tricky_text, middle=tricky_text, after=tricky_text, subject=names, obj=names,
       which=st.sampled_from(["training", "paraphrase", "all", "other"]))
def test_verbalizer_sentences_state_the_fact(before, middle, after, subject, obj, which):
    template = before + "{subject}" + middle + "{object}" + after
    try:
        verbalizer = Verbalizer(Templates({"r": [template]}))
        sentences = verbalizer.sentences([(subject, "r", obj)], which=which)
        prompts = verbalizer.prompts([(subject, "r", obj)], which=which)
    except KfineError:
        return
    assert len(sentences) == len(prompts) == (0 if which == "paraphrase" else 1)
    for sentence, prompt in zip(sentences, prompts):
        assert sentence.startswith(prompt.text) and sentence.endswith(obj + prompt.suffix)
        assert subject in prompt.text


@SETTINGS
@given(facts=st.lists(st.tuples(names, st.sampled_from(["r", "q"]), names), min_size=1, max_size=6),
       text=st.one_of(any_text, st.lists(names | any_text, max_size=6).map(" ".join)),
       case_sensitive=st.booleans())
def test_entity_linker_mentions_are_spans_of_the_text(facts, text, case_sensitive):
    linker = EntityLinker(KnowledgeGraph(facts), case_sensitive=case_sensitive)
    mentions = linker.link(text)
    end = 0
    for mention in mentions:
        assert end <= mention.start < mention.end <= len(text)
        assert mention.surface == text[mention.start:mention.end]
        assert linker.knowledge_graph.has_entity(mention.entity)
        end = mention.end


@SETTINGS
@given(value=st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.integers())))
def test_entity_linker_refuses_non_text_with_kfine_error(value):
    linker = EntityLinker(KnowledgeGraph([("Ana", "r", "Bo")]))
    try:
        linker.link(value)
    except KfineError:
        return
    raise AssertionError(f"link accepted {value!r}")


@SETTINGS
@given(token_ids=st.one_of(st.lists(st.integers(-5, 300), max_size=12), st.lists(any_text, max_size=3), any_text,
                           st.lists(st.floats(), max_size=3)))
def test_entity_linker_token_path_on_arbitrary_ids(people_tokenizer, people_task, token_ids):
    linker = EntityLinker(people_task.knowledge_graph, people_tokenizer)
    try:
        per_token = linker.entity_ids_per_token(token_ids)
    except KfineError:
        return
    assert len(per_token) == len(token_ids)
    assert all(0 <= entity <= people_task.knowledge_graph.num_entities for entity in per_token)
