"""Files users hand recstack (spec, sweep, design and targets files), read as untrusted input.

Each is checked before it is parsed and while it is: at most :data:`MAX_FILE_BYTES`, UTF-8
text without NUL bytes (a binary file is refused), JSON through Python's parser or YAML
through PyYAML's safe loader (plain data, never objects), nested at most :data:`MAX_DEPTH`
deep and at most :data:`MAX_VALUES` values once YAML's aliases are expanded: a "billion
laughs" file is refused from its node graph, before anything walks the expanded data.
Every problem is a one-line :class:`~recstack.errors.RecstackError` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recstack.errors import RecstackError
from recstack.text import shown

MAX_FILE_BYTES = 1 << 20
"""The largest file read (the canonical specs are under 1 KB, a design space about 3 KB)."""
MAX_DEPTH = 32
"""The deepest nesting of lists and mappings (the formats need 4)."""
MAX_VALUES = 100_000
"""The most values (scalars, lists, mappings) a file may hold with its aliases expanded."""


def require_file(path: Path, option: str, most_bytes: int, expected: str,
                 content: str) -> None:
    """Refuses, in one line, a ``path`` that is no file or holds more than ``most_bytes``
    (``expected``: what a user should have named, ``content``: what the bytes should be)."""
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise RecstackError(f"{option}: {shown(str(path))} {what}; expected {expected}")
    size = path.stat().st_size
    if size > most_bytes:
        raise RecstackError(f"{path.name}: {size} bytes is too large; expected at most "
                            f"{most_bytes} {content}")


def read_text(path: str | Path, option: str, most_bytes: int = MAX_FILE_BYTES) -> str:
    """The text of a user's file: it must exist, be at most ``most_bytes`` (a format of
    many numbers, such as a reuse profile, allows more), and be UTF-8 without NUL bytes;
    ``option`` names where it came from in errors."""
    path = Path(path)
    require_file(path, option, most_bytes, "a file", "bytes of JSON or YAML")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RecstackError(f"{path.name}: not UTF-8 text (byte {error.start}); expected a "
                            "JSON or YAML file") from None
    if "\x00" in text:
        raise RecstackError(f"{path.name}: holds NUL bytes; expected a JSON or YAML text "
                            "file")
    return text


def load_json(text: str, source: str, most_values: int = MAX_VALUES) -> Any:
    """JSON text as Python data, within the nesting limit and ``most_values`` values."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise RecstackError(f"{source}: not valid JSON (line {error.lineno}, column "
                            f"{error.colno}: {error.msg})") from None
    except RecursionError:
        raise _too_deep(source) from None
    _check_data(data, source, most_values)
    return data


def load_yaml(text: str, source: str) -> Any:
    """YAML (or JSON) text as Python data through PyYAML's safe loader, refused before it is
    built when it nests too deeply, expands to too many values or refers to itself."""
    import yaml

    try:
        _check_events(text, source)
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as error:
        raise RecstackError(f"{source}: not valid YAML ({_yaml_problem(error)})") from None
    try:
        try:
            node = loader.get_single_node()
        except yaml.YAMLError as error:
            raise RecstackError(f"{source}: not valid YAML ({_yaml_problem(error)})") from None
        if node is None:
            return None
        _check_graph(node, source)
        try:
            return loader.construct_document(node)
        except yaml.YAMLError as error:
            raise RecstackError(f"{source}: not valid YAML ({_yaml_problem(error)})") from None
    finally:
        loader.dispose()


def load_document(path: str | Path, option: str, syntax: str = "yaml") -> Any:
    """A user's file as Python data: ``syntax`` ``"json"`` or ``"yaml"`` (which reads JSON
    too)."""
    text = read_text(path, option)
    name = Path(path).name
    return load_json(text, name) if syntax == "json" else load_yaml(text, name)


def _yaml_problem(error: Exception) -> str:
    mark = getattr(error, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return where + (getattr(error, "problem", None) or type(error).__name__)


def _too_deep(source: str) -> RecstackError:
    return RecstackError(f"{source}: nested more than {MAX_DEPTH} levels deep; expected a "
                         "flat mapping of settings")


def _too_large(source: str) -> RecstackError:
    return RecstackError(f"{source}: expands to more than {MAX_VALUES} values (through "
                         "YAML aliases); expected a mapping of settings")


def _check_events(text: str, source: str) -> None:
    """Nesting depth from the event stream, which PyYAML parses without recursion: a file
    nested thousands deep is refused before the (recursive) composer sees it."""
    import yaml

    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise _too_deep(source)
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            depth -= 1


def _children(node: Any) -> list[Any]:
    import yaml

    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_graph(root: Any, source: str) -> None:
    """Values and depth of the document with every alias expanded, counted once per node
    over PyYAML's node graph (an alias is the same node object again), without recursion;
    an alias inside its own anchor is refused."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            children = _children(node)
            size[key] = 1 + sum(size[id(child)] for child in children)
            depth[key] = 1 + max((depth[id(child)] for child in children), default=0)
            on_path.discard(key)
            if size[key] > MAX_VALUES:
                raise _too_large(source)
            if depth[key] > MAX_DEPTH + 1:  # scalars count one level
                raise _too_deep(source)
            continue
        if key in size:
            continue
        if key in on_path:
            raise RecstackError(f"{source}: a YAML alias refers to the value that holds it; "
                                "expected plain data")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in size)


def _check_data(data: Any, source: str, most_values: int = MAX_VALUES) -> None:
    """Nesting depth and value count of parsed JSON, without recursion."""
    count = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, level = stack.pop()
        count += 1
        if count > most_values:
            raise RecstackError(f"{source}: holds more than {most_values} values")
        if isinstance(value, (list, dict)):
            if level > MAX_DEPTH:
                raise _too_deep(source)
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, level + 1) for item in items)
