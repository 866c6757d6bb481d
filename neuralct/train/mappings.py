"""Config files: a YAML or JSON mapping of config keys, with no key given twice.

PyYAML and `json` keep the last of two equal keys silently (`epochs: 10` ... `epochs: 60` would
train 60 epochs); here the file is refused, naming the key and, for YAML, its line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..errors import InvalidInputError


def read_mapping(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML (`.yaml`, `.yml`) or JSON file.

    Raises:
        InvalidInputError: a missing or unparsable file, or one that does not hold a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"config file {str(path)!r} does not exist")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            values = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader (see _UniqueKeyLoader)
        else:
            values = json.loads(text, object_pairs_hook=_unique_keys)
    except (yaml.YAMLError, json.JSONDecodeError, _DuplicateKey) as error:
        raise InvalidInputError(f"config file {str(path)!r} is not valid {path.suffix[1:].upper()}: {error}") from None
    if not isinstance(values, Mapping):
        raise InvalidInputError(f"config file {str(path)!r} must hold a mapping of config keys; got {values!r}")
    return dict(values)


class _DuplicateKey(ValueError):
    """A mapping of a config file that gives a key twice."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<` merges may be overridden; non-scalar keys are PyYAML's to refuse
            key = self.construct_object(key_node)
            if key in seen:
                raise _DuplicateKey(f"the key {key!r} is given twice (again on line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key given twice (json keeps the last one)."""
    values: dict[str, Any] = {}
    for key, value in pairs:
        if key in values:
            raise _DuplicateKey(f"the key {key!r} is given twice")
        values[key] = value
    return values
