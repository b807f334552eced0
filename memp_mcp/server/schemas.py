"""The tools' published JSON schemas, cut to what a calling model needs.

Every agent session carries the tool list in its context, so each character of it is paid for on
every turn. What pydantic derives from the models is complete but long: titles, `$defs` and `$ref`,
`anyOf` with null for every optional field, limits and nested descriptions. The published schemas
keep names, types, enums, what is required, and the top-level descriptions written for the model;
the server still validates every call against the full models (a limit crossed is refused with a
message naming it), and still returns the full structured content.

Output schemas are published at their top level only (each field and its JSON type): enough for a
client to check the shape of a result, without the nested models that no model reads.
"""

from __future__ import annotations

from typing import Any

_KEPT = ("type", "enum", "items", "properties", "required", "anyOf", "minimum", "maximum")


def compact_input(schema: dict[str, Any]) -> dict[str, Any]:
    """The input schema with references inlined, and nothing but types, enums and required fields
    below the top-level descriptions."""
    definitions = schema.get("$defs", {})
    properties = {
        name: _compact(_resolve(value, definitions), definitions, keep_description=True)
        for name, value in schema.get("properties", {}).items()
    }
    compacted: dict[str, Any] = {"type": "object", "properties": properties}
    if schema.get("required"):
        compacted["required"] = list(schema["required"])
    return compacted


def compact_output(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """Each top-level field of a result with its JSON type(s)."""
    if schema is None:
        return None
    definitions = schema.get("$defs", {})
    properties = {
        name: {"type": _types(_resolve(value, definitions), definitions)}
        for name, value in schema.get("properties", {}).items()
    }
    return {"type": "object", "properties": properties}


def _resolve(node: Any, definitions: dict[str, Any]) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = definitions[node["$ref"].rsplit("/", 1)[-1]]
    return node


def _compact(node: Any, definitions: dict[str, Any], *, keep_description: bool = False) -> Any:
    node = _resolve(node, definitions)
    if not isinstance(node, dict):
        return node
    options = [_resolve(option, definitions) for option in node.get("anyOf", [])]
    present = [option for option in options if option.get("type") != "null"]
    if options and len(present) == 1:
        # An optional field: a model leaves it out rather than sending null.
        merged = {**present[0], **({"description": node["description"]} if "description" in node else {})}
        return _compact(merged, definitions, keep_description=keep_description)
    compacted: dict[str, Any] = {}
    if keep_description and node.get("description"):
        compacted["description"] = node["description"]
    for key in _KEPT:
        if key not in node:
            continue
        value = node[key]
        if key == "items":
            value = _compact(value, definitions)
        elif key == "properties":
            value = {name: _compact(child, definitions) for name, child in value.items()}
        elif key == "anyOf":
            value = [_compact(option, definitions) for option in present]
        compacted[key] = value
    return compacted


def _types(node: Any, definitions: dict[str, Any]) -> str | list[str]:
    node = _resolve(node, definitions)
    if "anyOf" in node:
        found: list[str] = []
        for option in node["anyOf"]:
            kinds = _types(option, definitions)
            for kind in [kinds] if isinstance(kinds, str) else kinds:
                if kind not in found:
                    found.append(kind)
        return found[0] if len(found) == 1 else found
    kind = node.get("type", "object")
    return kind if isinstance(kind, str) else list(kind)
