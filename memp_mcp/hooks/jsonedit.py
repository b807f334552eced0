"""Edit a JSON document in place: change one member or element and leave every other byte as it was.

Client settings files are written by people and by the clients themselves, in their own layout.
Loading and re-dumping one would reformat all of it (and reorder nothing, but still rewrite every
line), so edits here are splices into the original text at positions found by a small scanner
built on the standard library's own decoder (`json.JSONDecoder.raw_decode`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from memp_mcp.errors import InvalidInputError

_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


@dataclass
class Node:
    """A JSON value's place in the text: [start, end), and for containers their parts."""

    start: int
    end: int
    value: Any
    # Objects: (key, member start, value node); arrays: (None, element start, element node).
    items: list[tuple[str | None, int, Node]] = field(default_factory=list)

    def member(self, key: str) -> Node | None:
        return next((node for name, _, node in self.items if name == key), None)


def parse(text: str) -> Node:
    """The document's root node. Raises InvalidInputError when `text` is not one JSON value."""
    try:
        node, end = _value(text, _skip(text, 0))
    except (ValueError, IndexError, RecursionError) as exc:
        raise InvalidInputError(f"not valid JSON: {exc}") from None
    if _skip(text, end) != len(text):
        raise InvalidInputError(f"not valid JSON: extra data at character {end}")
    return node


def _skip(text: str, pos: int) -> int:
    match = _SPACE.match(text, pos)
    return match.end() if match else pos


def _value(text: str, pos: int) -> tuple[Node, int]:
    char = text[pos]
    if char == "{":
        return _container(text, pos, "}", keyed=True)
    if char == "[":
        return _container(text, pos, "]", keyed=False)
    value, end = _DECODER.raw_decode(text, pos)
    return Node(pos, end, value), end


def _container(text: str, pos: int, close: str, *, keyed: bool) -> tuple[Node, int]:
    node = Node(pos, pos, {} if keyed else [])
    pos = _skip(text, pos + 1)
    if text[pos] == close:
        node.end = pos + 1
        return node, pos + 1
    while True:
        item_start = pos
        key: str | None = None
        if keyed:
            key, pos = _DECODER.raw_decode(text, pos)
            if not isinstance(key, str):
                raise ValueError(f"expected a key at character {item_start}")
            pos = _skip(text, pos)
            if text[pos] != ":":
                raise ValueError(f"expected ':' at character {pos}")
            pos = _skip(text, pos + 1)
        child, pos = _value(text, pos)
        if keyed and key in node.value:
            # Readers disagree on which of two members wins (JavaScript takes the last): editing one
            # could change nothing the client reads.
            raise ValueError(f"the key {key!r} appears twice in one object (character {item_start})")
        node.items.append((key, item_start, child))
        if keyed:
            node.value[key] = child.value
        else:
            node.value.append(child.value)
        pos = _skip(text, pos)
        if text[pos] == close:
            node.end = pos + 1
            return node, pos + 1
        if text[pos] != ",":
            raise ValueError(f"expected ',' or '{close}' at character {pos}")
        pos = _skip(text, pos + 1)


def indent_unit(text: str) -> str:
    """The document's indentation step (two spaces when it has none to copy)."""
    match = re.search(r"[{\[]\r?\n([ \t]+)\S", text)
    return match.group(1) if match else "  "


def _line_indent(text: str, pos: int) -> str:
    line_start = text.rfind("\n", 0, pos) + 1
    return re.match(r"[ \t]*", text[line_start:]).group(0)  # type: ignore[union-attr]


def _render(value: Any, text: str, base: str) -> str:
    unit = indent_unit(text)
    dumped = json.dumps(value, indent=unit, ensure_ascii=False)
    return dumped.replace("\n", "\n" + base)


def append(text: str, container: Node, value: Any, key: str | None = None) -> str:
    """`text` with `value` added at the end of `container` (an object when `key` is given, else an array)."""
    newline = "\r\n" if "\r\n" in text else "\n"
    if container.items:
        _, last_start, last = container.items[-1]
        if len(container.items) > 1:
            prev_end = container.items[-2][2].end
            separator = text[text.index(",", prev_end) + 1 : last_start]
        else:
            separator = text[container.start + 1 : last_start]
        base = _line_indent(text, last_start) if "\n" in separator else ""
        entry = (json.dumps(key) + ": " if key is not None else "") + _render(value, text, base)
        return text[: last.end] + "," + (separator or " ") + entry + text[last.end :]
    outer = _line_indent(text, container.start)
    inner = outer + indent_unit(text)
    entry = (json.dumps(key) + ": " if key is not None else "") + _render(value, text, inner)
    body = newline + inner + entry + newline + outer
    return text[: container.start + 1] + body + text[container.end - 1 :]


def remove(text: str, container: Node, index: int) -> str:
    """`text` without the `index`-th member or element of `container`."""
    items = container.items
    if len(items) == 1:
        return text[: container.start + 1] + text[container.end - 1 :]
    if index < len(items) - 1:
        return text[: items[index][1]] + text[items[index + 1][1] :]
    return text[: items[index - 1][2].end] + text[items[index][2].end :]


def replace(text: str, node: Node, value: Any) -> str:
    """`text` with `node`'s value replaced by `value`, indented where it stands."""
    return text[: node.start] + _render(value, text, _line_indent(text, node.start)) + text[node.end :]
