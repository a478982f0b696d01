"""A user's corpus for a user's graph: one document per entity, and the relations' labels.

With these, LongTraceRL's data is built from real text (Wikipedia / KILT-style pages) instead
of documents written from the graph: the agent searches the pages, the contexts hold them, and
nothing generated is added to them. Two inputs, both optional, next to `load_graph`'s files:

* documents, JSONL: `{"entity": ID, "title": ..., "text": ...}` per line, `entity` being the
  graph's entity id. Pages for entities outside the graph are kept: they are searched and can
  be distractors. A graph entity without a page is an error (its chain could not be read).
* relation labels, TSV `ID<TAB>phrase` (Wikidata's `P19<TAB>place of birth`) or JSONL
  `{"id": ..., "label": ...}`: how a relation reads in a question and in a search query.
  Every relation of the graph needs one (here, or the built-in RELATION_TEXT), so no raw id
  such as `P19` reaches a question or a query (`check_relation_labels`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from posttrain.data.io import DataError, iter_jsonl, require_file
from posttrain.data.kg import Document, KnowledgeGraph, document_id

_LISTED = 5
"""How many missing ids an error names before it only counts the rest."""


def _string(row: dict[str, Any], key: str, path: Path, line: int) -> str:
    if key not in row:
        raise DataError("missing key", path, line=line, key=key)
    value = row[key]
    if not isinstance(value, str):
        raise DataError(f"must be a string, got {value!r:.60}", path, line=line, key=key)
    if not value.strip():
        raise DataError("is empty", path, line=line, key=key)
    return value.strip()


def _some(ids: list[str]) -> str:
    shown = ", ".join(map(repr, ids[:_LISTED]))
    return shown + (f" and {len(ids) - _LISTED} more" if len(ids) > _LISTED else "")


def load_documents(path: str | Path, kg: KnowledgeGraph) -> list[Document]:
    """The pages of a documents file, in file order, as `Document`s (`doc:<entity>` ids).

    Bad rows (a missing or empty `entity`, `title` or `text`, a second page for one entity)
    name file:line and key; graph entities without a page are one error listing them.
    """
    path = Path(path)
    documents: list[Document] = []
    lines: dict[str, int] = {}
    for line, row in iter_jsonl(path):
        if not isinstance(row, dict):
            raise DataError("expected a JSON object {entity, title, text}", path, line=line)
        entity = _string(row, "entity", path, line)
        if entity in lines:
            raise DataError(
                f"a second document for entity {entity!r} (the first is line {lines[entity]})",
                path,
                line=line,
                key="entity",
            )
        lines[entity] = line
        title, text = _string(row, "title", path, line), _string(row, "text", path, line)
        documents.append(Document(document_id(entity), entity, title, text))
    missing = [e.id for e in kg.entities() if e.id not in lines]
    if missing:
        raise DataError(
            f"{len(missing)} graph entities have no document: {_some(missing)}; add a line "
            '{"entity": ID, "title": ..., "text": ...} for each, or remove them from the graph',
            path,
        )
    return documents


def _label_rows(path: Path) -> Iterator[tuple[int, str, str]]:
    if path.suffix == ".jsonl":
        for line, row in iter_jsonl(path):
            if not isinstance(row, dict):
                raise DataError("expected a JSON object {id, label}", path, line=line)
            yield line, _string(row, "id", path, line), _string(row, "label", path, line)
    elif path.suffix == ".tsv":
        with require_file(path).open(encoding="utf-8") as handle:
            for line, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                fields = [f.strip() for f in raw.rstrip("\r\n").split("\t")]
                if line == 1 and [f.lower() for f in fields] in (["id", "label"], ["id", "phrase"]):
                    continue  # a header
                if len(fields) != 2 or not all(fields):
                    raise DataError(
                        f"expected 2 non-empty tab-separated columns (id, phrase), got {fields!r}",
                        path,
                        line=line,
                    )
                yield line, fields[0], fields[1]
    else:
        raise DataError("unsupported relations format (use .tsv or .jsonl)", path)


def load_relation_labels(path: str | Path) -> dict[str, str]:
    """Relation id -> phrase from a relations file (.tsv `id<TAB>phrase`, or .jsonl
    `{id, label}`); an id given twice names both lines."""
    path = Path(path)
    labels: dict[str, str] = {}
    lines: dict[str, int] = {}
    for line, relation, label in _label_rows(path):
        if relation in labels:
            raise DataError(
                f"relation {relation!r} labelled twice (first on line {lines[relation]})",
                path,
                line=line,
                key="id",
            )
        labels[relation], lines[relation] = label, line
    return labels


def check_relation_labels(kg: KnowledgeGraph, relations_file: str | Path | None) -> None:
    """Every relation of the graph has a phrase (`kg.relation_text`); else one error naming
    the unlabelled relation ids and the file that should hold them."""
    missing = sorted(r for r in kg.relations() if kg.relation_text(r) is None)
    if not missing:
        return
    what = f"relation {missing[0]!r}" if len(missing) == 1 else f"relations {_some(missing)}"
    if relations_file is None:
        raise DataError(
            f"no label for {what} of the graph; give a relations file (`relations:`, lines "
            "ID<TAB>phrase) so that no raw relation id reaches a question or a search query"
        )
    raise DataError(f"no label for {what}; add a line ID<TAB>phrase for each", relations_file)
