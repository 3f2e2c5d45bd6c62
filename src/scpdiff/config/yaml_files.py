"""Reading configuration YAML, checking it against a JSON schema and merging it, one way for every file.

Benchmark files, the workflow config and ``scpdiff validate-config`` all go through these, so a
broken file gets the same message whichever of them reads it: the file's name, then what is wrong
(the YAML parser's complaint, or up to five schema violations, each with its key path).

    data = read_mapping(path, "a benchmark file")
    check_schema(data, load_schema(SCHEMA_PATH, "benchmark"), source=str(path), what="benchmark config")
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

MAX_SCHEMA_ERRORS = 5  # enough to fix a file in one pass without burying the first problem


def read_yaml(path: str | os.PathLike) -> Any:
    """The parsed content of ``path`` (``None`` for an empty file); bad YAML names the file."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc


def read_mapping(path: str | os.PathLike, what: str) -> dict:
    """:func:`read_yaml` for a file that must hold a mapping (``what``: "a benchmark file")."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {what} must be a YAML mapping")
    return data


def load_schema(path: Path, what: str) -> dict:
    """The JSON schema (written as YAML) at ``path``; ``what`` names it if it is missing."""
    if not path.is_file():
        raise ConfigError(f"{what} schema {path} is missing (run from a scpdiff checkout)")
    return yaml.safe_load(path.read_text())


def check_schema(data: Any, schema: dict, source: str, what: str) -> None:
    """Raise :class:`ConfigError` "``source``: invalid ``what``:" listing the first violations."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  {'/'.join(str(x) for x in e.absolute_path) or '(top level)'}: {e.message}"
                 for e in errors[:MAX_SCHEMA_ERRORS]]
        raise ConfigError(f"{source}: invalid {what}:\n" + "\n".join(lines))


def deep_merge(base: dict, extra: dict, *, null_deletes: bool = False) -> dict:
    """``base`` with ``extra`` merged in; nested mappings merge, everything else is replaced.

    With ``null_deletes`` a ``null`` in ``extra`` removes the key instead, as in a JSON Merge
    Patch (RFC 7396): how a benchmark that ``extends`` another drops a setting it does not want.
    """
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if value is None and null_deletes:
            out.pop(key, None)
        elif isinstance(value, dict) and (null_deletes or isinstance(out.get(key), dict)):
            # with null_deletes a new mapping is merged onto nothing, so its own nulls go too
            inner = out.get(key) if isinstance(out.get(key), dict) else {}
            out[key] = deep_merge(inner, value, null_deletes=null_deletes)
        else:
            out[key] = copy.deepcopy(value)
    return out
