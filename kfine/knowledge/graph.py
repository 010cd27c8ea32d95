"""`KnowledgeGraph`: an immutable set of facts with stable ids for tensors."""

import collections
import hashlib
import json
import os

import numpy as np

from kfine.errors import KnowledgeGraphError, located
from kfine.io import artifact_path, atomic_directory, write_json
from kfine.knowledge.formats import (
    ALIAS_COLUMNS,
    TRIPLE_COLUMNS,
    read_aliases,
    read_triples,
    record_problem,
    write_aliases,
    write_triples,
)

TRIPLES_FILE = "triples.tsv"
ALIASES_FILE = "aliases.tsv"
GRAPH_FILE = "graph.json"
INVERSE_PREFIX = "^"


class KnowledgeGraph:
    """A knowledge graph: `(subject, relation, object)` facts between named entities.

    Entities and relations are identified by their names. Ids are their
    positions in the sorted name lists, so they are stable: the same facts
    give the same ids on every machine and after `save`/`load`, which is what
    lets embedding tables trained on one run be reused by another.

    The graph is immutable; `without` and `subgraph` return new graphs.
    Duplicate facts collapse. Aliases are other names of an entity (the
    evaluator accepts them as answers): every alias belongs to exactly one
    entity and is no other entity's name, so a name always identifies one
    entity. An alias equal to its entity's own name is dropped.

    Names must be non-empty strings without surrounding whitespace, tabs or
    line breaks, so that every graph can be saved and loaded unchanged.

    Args:
        triples: iterable of `(subject, relation, object)` string tuples.
        aliases: iterable of `(entity, alias)` string pairs, or None.
        name: str. A label for logs and `graph.json`; not part of the content.

    Raises:
        KnowledgeGraphError: a triple or alias is malformed, an alias names an
            unknown entity, or an alias is ambiguous.

    Example:

    >>> kg = KnowledgeGraph(
    ...     [("France", "capital", "Paris"), ("Paris", "country", "France")],
    ...     aliases=[("Paris", "City of Light")],
    ... )
    >>> kg.objects("France", "capital")
    {'Paris'}
    >>> kg.entity_id("Paris"), kg.names("Paris")
    (1, ['Paris', 'City of Light'])
    """

    def __init__(self, triples, aliases=None, name="knowledge_graph"):
        self.name = name
        self._fingerprint = None
        self._index_triples(triples)
        self._index_aliases([(pair, index) for index, pair in enumerate(aliases or ())], source=None)

    # === Construction ===

    def _index_triples(self, triples):
        unique = set()
        for index, triple in enumerate(triples):
            problem = record_problem(TRIPLE_COLUMNS, triple)
            if problem:
                raise KnowledgeGraphError(f"triples[{index}]: {problem}")
            unique.add(tuple(triple))
        self._triples = sorted(unique)
        self._entities = sorted({triple[0] for triple in unique} | {triple[2] for triple in unique})
        self._relations = sorted({triple[1] for triple in unique})
        self._entity_ids = {entity: index for index, entity in enumerate(self._entities)}
        self._relation_ids = {relation: index for index, relation in enumerate(self._relations)}

        self._objects = collections.defaultdict(set)
        self._subjects = collections.defaultdict(set)
        self._neighbors = collections.defaultdict(set)
        for subject, relation, obj in self._triples:
            self._objects[subject, relation].add(obj)
            self._subjects[relation].add(subject)
            self._neighbors[subject].add((relation, obj))
            self._neighbors[obj].add((INVERSE_PREFIX + relation, subject))

        ids = [
            (self._entity_ids[subject], self._relation_ids[relation], self._entity_ids[obj])
            for subject, relation, obj in self._triples
        ]
        self._triple_ids = np.array(ids, dtype=np.int32).reshape(-1, 3)
        self._triple_ids.setflags(write=False)

    def _index_aliases(self, records, source):
        """Indexes `((entity, alias), position)` records.

        `position` is the line in the file `source`, or the index in the
        `aliases` argument when `source` is None.
        """

        def error(position, message):
            if source is None:
                return KnowledgeGraphError(f"aliases[{position}]: {message}")
            return KnowledgeGraphError(located(source, position, message))

        entity_of_alias = {}
        position_of_alias = {}
        for pair, position in records:
            problem = record_problem(ALIAS_COLUMNS, pair)
            if problem:
                raise error(position, problem)
            entity, alias = pair
            if entity not in self._entity_ids:
                raise error(position, f"alias {alias!r} is given for {entity!r}, which is not an entity of the graph")
            if alias == entity:
                continue
            if alias in self._entity_ids:
                raise error(position, f"alias {alias!r} of {entity!r} is already the name of another entity")
            other = entity_of_alias.setdefault(alias, entity)
            if other != entity:
                first = position_of_alias[alias]
                where = f"aliases[{first}]" if source is None else f"line {first}"
                raise error(position, f"alias {alias!r} of {entity!r} is already an alias of {other!r} ({where})")
            position_of_alias.setdefault(alias, position)
        self._alias_pairs = sorted((entity, alias) for alias, entity in entity_of_alias.items())
        self._aliases = collections.defaultdict(list)
        for entity, alias in self._alias_pairs:
            self._aliases[entity].append(alias)
        self._fingerprint = None

    @classmethod
    def from_files(cls, triples_path, aliases_path=None, name="knowledge_graph"):
        """Reads a graph from a triples file and an optional aliases file.

        See `kfine.knowledge.formats` for the formats. Errors in the aliases
        (an unknown entity, an ambiguous alias) name the file and line.

        Args:
            triples_path: str. A `.tsv`, `.csv`, `.jsonl` or `.json` file.
            aliases_path: str or None.
            name: str. The graph's label.

        Returns:
            A `KnowledgeGraph`.

        Raises:
            KnowledgeGraphError: a file is missing or malformed.
        """
        graph = cls(read_triples(triples_path), name=name)
        if aliases_path is not None:
            records = [((entity, alias), line) for entity, alias, line in read_aliases(aliases_path)]
            graph._index_aliases(records, source=aliases_path)
        return graph

    # === Saving ===

    def save(self, directory):
        """Writes the graph to `directory`, replacing it atomically.

        The directory gets `triples.tsv`, `aliases.tsv` (when the graph has
        aliases) and `graph.json` (name, counts and `fingerprint`).

        Args:
            directory: str.

        Raises:
            KnowledgeGraphError: the graph is empty (files never hold empty graphs).
        """
        if not self._triples:
            raise KnowledgeGraphError(located(directory, None, "cannot save an empty knowledge graph"))
        with atomic_directory(directory) as staging:
            write_triples(os.path.join(staging, TRIPLES_FILE), self._triples)
            if self._alias_pairs:
                write_aliases(os.path.join(staging, ALIASES_FILE), self._alias_pairs)
            write_json(
                os.path.join(staging, GRAPH_FILE),
                {
                    "name": self.name,
                    "num_entities": self.num_entities,
                    "num_relations": self.num_relations,
                    "num_triples": self.num_triples,
                    "num_aliases": len(self._alias_pairs),
                    "fingerprint": self.fingerprint(),
                },
            )

    @classmethod
    def load(cls, directory):
        """Reads a graph written by `save`.

        `graph.json` is optional (a folder holding just `triples.tsv` loads
        too); when present, the content must match its fingerprint.

        Args:
            directory: str.

        Returns:
            A `KnowledgeGraph` equal to the one saved, with its name.

        Raises:
            KnowledgeGraphError: the directory or `triples.tsv` is missing, a
                file is malformed, or the files changed after saving.
        """
        if not os.path.isdir(directory):
            raise KnowledgeGraphError(located(directory, None, "no such knowledge-graph directory"))
        metadata = _read_metadata(artifact_path(directory, GRAPH_FILE, KnowledgeGraphError))
        aliases_path = artifact_path(directory, ALIASES_FILE, KnowledgeGraphError)
        graph = cls.from_files(
            artifact_path(directory, TRIPLES_FILE, KnowledgeGraphError),
            aliases_path if os.path.exists(aliases_path) else None,
            name=metadata.get("name", "knowledge_graph"),
        )
        expected = metadata.get("fingerprint")
        if expected is not None and graph.fingerprint() != expected:
            message = f"the fingerprint does not match {TRIPLES_FILE} and {ALIASES_FILE}; they changed after saving"
            raise KnowledgeGraphError(located(os.path.join(directory, GRAPH_FILE), None, message))
        return graph

    # === Names and ids ===

    @property
    def entities(self):
        """list of str: every subject and object, sorted; positions are entity ids."""
        return list(self._entities)

    @property
    def relations(self):
        """list of str: the relation names, sorted; positions are relation ids."""
        return list(self._relations)

    @property
    def num_entities(self):
        return len(self._entities)

    @property
    def num_relations(self):
        return len(self._relations)

    @property
    def num_triples(self):
        return len(self._triples)

    def has_entity(self, name):
        """Whether `name` is an entity (aliases are not entities)."""
        return name in self._entity_ids

    def has_relation(self, name):
        """Whether `name` is a relation of the graph."""
        return name in self._relation_ids

    def entity_id(self, name):
        """Returns the id of entity `name`; raises `KnowledgeGraphError` if unknown."""
        self._check_entity(name)
        return self._entity_ids[name]

    def relation_id(self, name):
        """Returns the id of relation `name`; raises `KnowledgeGraphError` if unknown."""
        if name not in self._relation_ids:
            raise KnowledgeGraphError(f"unknown relation {name!r}")
        return self._relation_ids[name]

    def aliases(self, entity):
        """Returns the aliases of `entity`, sorted (its own name excluded)."""
        self._check_entity(entity)
        return list(self._aliases.get(entity, ()))

    def names(self, entity):
        """Returns `[entity, *aliases]`: every name that denotes `entity`."""
        return [entity, *self.aliases(entity)]

    @property
    def alias_pairs(self):
        """list of `(entity, alias)`, sorted."""
        return list(self._alias_pairs)

    def _check_entity(self, name):
        if name not in self._entity_ids:
            raise KnowledgeGraphError(f"unknown entity {name!r}")

    # === Facts ===

    @property
    def triples(self):
        """list of `(subject, relation, object)`, sorted; positions match `triple_ids`."""
        return list(self._triples)

    @property
    def triple_ids(self):
        """Read-only `np.int32` array of shape `(num_triples, 3)`: subject, relation and object ids."""
        return self._triple_ids

    def adjacency(self):
        """Returns the edges as `(source, relation, target)` `np.int32` arrays.

        One edge per triple, from the subject's id to the object's id, ready
        for `keras.ops.take` / segment ops. Layers that pass messages both
        ways add the reversed edges themselves.
        """
        return self._triple_ids[:, 0], self._triple_ids[:, 1], self._triple_ids[:, 2]

    def objects(self, subject, relation):
        """Returns the set of objects of `(subject, relation)`; empty if there is none."""
        return set(self._objects.get((subject, relation), ()))

    def subjects(self, relation):
        """Returns the set of entities that are the subject of some `relation` fact."""
        return set(self._subjects.get(relation, ()))

    def relation_range(self, relation):
        """Returns the set of every object seen with `relation` (its candidate answers)."""
        return {obj for subject in self._subjects.get(relation, ()) for obj in self._objects[subject, relation]}

    def neighbors(self, entity):
        """Returns the entities one fact away from `entity`, with the relation.

        Outgoing facts `(entity, r, x)` give `("r", x)`; incoming facts
        `(x, r, entity)` give `("^r", x)`, so the direction is kept.

        Raises:
            KnowledgeGraphError: `entity` is unknown.
        """
        self._check_entity(entity)
        return set(self._neighbors[entity])

    # === Derived graphs ===

    def without(self, triples):
        """Returns a new graph lacking `triples` (those not in this graph are ignored).

        Entities that only the removed triples named disappear, with their aliases.
        """
        removed = {tuple(triple) for triple in triples}
        return self._derived([triple for triple in self._triples if triple not in removed])

    def subgraph(self, triples):
        """Returns a new graph of the given `triples` that are in this graph, with their entities' aliases."""
        kept = {tuple(triple) for triple in triples}
        return self._derived([triple for triple in self._triples if triple in kept])

    def _derived(self, triples):
        entities = {triple[0] for triple in triples} | {triple[2] for triple in triples}
        aliases = [(entity, alias) for entity, alias in self._alias_pairs if entity in entities]
        return KnowledgeGraph(triples, aliases, name=self.name)

    # === Summaries ===

    def fingerprint(self):
        """Returns the sha256 hex digest of the content (triples and aliases, not the name).

        Equal graphs have equal fingerprints, whatever the order or format of
        the files they came from.
        """
        if self._fingerprint is None:
            canonical = json.dumps([self._triples, self._alias_pairs], ensure_ascii=False, separators=(",", ":"))
            self._fingerprint = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        return self._fingerprint

    def stats(self):
        """Returns a dict of counts: entities, relations, triples, aliases,
        triples per relation, and the mean and max out-degree over entities."""
        out_degree = np.bincount(self._triple_ids[:, 0], minlength=self.num_entities)
        triples_per_relation = np.bincount(self._triple_ids[:, 1], minlength=self.num_relations)
        return {
            "num_entities": self.num_entities,
            "num_relations": self.num_relations,
            "num_triples": self.num_triples,
            "num_aliases": len(self._alias_pairs),
            "triples_per_relation": dict(zip(self._relations, triples_per_relation.tolist())),
            "mean_out_degree": float(out_degree.mean()) if self.num_entities else 0.0,
            "max_out_degree": int(out_degree.max()) if self.num_entities else 0,
        }

    def __len__(self):
        return len(self._triples)

    def __eq__(self, other):
        if not isinstance(other, KnowledgeGraph):
            return NotImplemented
        return self._triples == other._triples and self._alias_pairs == other._alias_pairs

    def __hash__(self):
        return hash(self.fingerprint())

    def __repr__(self):
        return (
            f"<KnowledgeGraph name={self.name!r} entities={self.num_entities} "
            f"relations={self.num_relations} triples={self.num_triples} aliases={len(self._alias_pairs)}>"
        )


def _read_metadata(path):
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as stream:
            metadata = json.load(stream)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise KnowledgeGraphError(located(path, None, f"cannot be read as JSON ({error})")) from None
    if not isinstance(metadata, dict):
        raise KnowledgeGraphError(located(path, None, "expected a JSON object"))
    return metadata
