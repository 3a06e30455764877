"""The inventory from files: what `kubectl get ... -A -o json|yaml` prints.

Accepted: a `List` (or `PodList`, ...), single objects, multi-document YAML, several files,
any subset of kinds. A file that is not JSON/YAML or holds no Kubernetes object is an
`InventoryError` naming it; a single bad object is skipped with a note (see `build.py`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from discover.errors import InventoryError
from discover.inventory.build import RawObject, build_inventory
from discover.inventory.fields import FieldError, timestamp
from discover.inventory.json_stream import NotStreamed, load_json
from discover.inventory.model import Inventory
from discover.inventory.trim import trim_object
from discover.reading.yaml_documents import load_yaml_documents

# `inventory --out` writes the time of the snapshot here (ListMeta ignores unknown keys).
COLLECTED_AT_KEY = "netpol-discover.io/collected-at"
# ... and here that RoleBindings/ClusterRoleBindings were listed (RBAC known, even if none)
RBAC_LISTED_KEY = "netpol-discover.io/rbac-listed"
# JSON files of this many bytes and up are read item by item, each object trimmed of the
# fields no parser reads as it comes (json_stream.py, trim.py): 100,000 pods read whole
# were several GB of Python objects. None: always whole (the benchmark's "before").
STREAM_JSON_FROM: int | None = 0


class InventoryFileError(InventoryError):
    def __init__(self, path: str, message: str, where: str | None = None) -> None:
        self.path = path
        self.where = where
        self.message = message
        super().__init__(f"{path}: {where}: {message}" if where else f"{path}: {message}")


def load_inventory_files(paths: Sequence[Path]) -> Inventory:
    """Load and merge inventory files; later files win for the same object."""
    if not paths:
        raise InventoryError("no inventory file given")
    raw: list[RawObject] = []
    collected: list[datetime] = []
    notes: list[str] = []
    rbac_listed = False
    for path in paths:
        documents = read_documents(path)
        for where, doc in documents:
            if isinstance(doc, Mapping):
                stamp = _collected_at(doc, path.name, where)
                if stamp is not None:
                    collected.append(stamp)
                metadata = doc.get("metadata")
                rbac_listed = rbac_listed or (isinstance(metadata, Mapping)
                                              and metadata.get(RBAC_LISTED_KEY) == "true")
            raw.extend(_objects(doc, path.name, where, notes))
    if not raw:
        names = ", ".join(p.name for p in paths)
        raise InventoryError(f"{names}: no Kubernetes objects found")
    # Several snapshots: pods seen alive in the oldest one were alive then.
    return build_inventory(raw, sources=tuple(str(p) for p in paths),
                           collected_at=min(collected) if collected else None, notes=notes,
                           rbac_listed=rbac_listed)


def read_documents(path: Path) -> list[tuple[str, Any]]:
    """The documents of a JSON or (multi-document) YAML file, each with its location."""
    if STREAM_JSON_FROM is not None:
        try:
            if path.stat().st_size >= STREAM_JSON_FROM:
                return [("", load_json(path, trim_object))]
        except (OSError, NotStreamed):
            pass  # not well-formed JSON: read whole below, which says what and where
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InventoryFileError(str(path), "no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InventoryFileError(str(path), f"cannot read: {error}") from error
    stripped = text.lstrip()
    if not stripped:
        raise InventoryFileError(path.name, "empty file")
    if stripped[0] in "{[":
        try:
            return [("", json.loads(text))]
        except RecursionError:
            if path.suffix.lower() == ".json":
                raise InventoryFileError(path.name, "invalid JSON: nested too deep") from None
        except json.JSONDecodeError as error:
            if path.suffix.lower() == ".json":
                raise InventoryFileError(
                    path.name, f"invalid JSON: {error.msg}",
                    f"line {error.lineno} column {error.colno}") from None
    try:
        docs = [d for d in load_yaml_documents(text) if d is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else None
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise InventoryFileError(path.name, f"invalid YAML: {problem}", where) from None
    if len(docs) == 1:
        return [("", docs[0])]
    return [(f"document {i + 1}", d) for i, d in enumerate(docs)]


def _objects(doc: Any, name: str, where: str, notes: list[str]) -> Iterator[RawObject]:
    prefix = f"{name}: {where}" if where else name
    if isinstance(doc, list):  # a bare JSON array of objects
        doc = {"kind": "List", "items": doc}
    if not isinstance(doc, Mapping):
        raise InventoryFileError(name, f"expected a Kubernetes object or List, "
                                       f"got {type(doc).__name__}", where or None)
    kind = doc.get("kind")
    if not isinstance(kind, str) or not kind:
        raise InventoryFileError(name, "not a Kubernetes object (no `kind`)", where or None)
    if kind == "List" or (kind.endswith("List") and "items" in doc):
        items = doc.get("items") or []
        if not isinstance(items, list):
            raise InventoryFileError(name, "items is not a list", where or None)
        item_kind = kind[: -len("List")] if kind != "List" else ""
        for i, item in enumerate(items):
            item_where = f"{prefix}: items[{i}]" if where else f"{name}: items[{i}]"
            if not isinstance(item, Mapping):
                notes.append(f"skipped: {item_where}: not an object "
                             f"({type(item).__name__})")
                continue
            if item_kind and not item.get("kind"):
                # The API omits kind/apiVersion inside typed lists (PodList): fill it in.
                item = {**item, "kind": item_kind}
            if item.get("kind") in ("List",) or str(item.get("kind", "")).endswith("List"):
                yield from _objects(item, name, f"{where}: items[{i}]" if where
                                    else f"items[{i}]", notes)
                continue
            yield RawObject(item_where, item)
        return
    yield RawObject(prefix, doc)


def _collected_at(doc: Mapping[str, Any], name: str, where: str) -> datetime | None:
    metadata = doc.get("metadata")
    if not isinstance(metadata, Mapping) or COLLECTED_AT_KEY not in metadata:
        return None
    try:
        return timestamp(metadata, COLLECTED_AT_KEY, "metadata")
    except FieldError as error:
        raise InventoryFileError(name, error.message, f"{where} {error.path}".strip()) from None
