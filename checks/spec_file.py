"""Reading an App Platform spec (YAML) so that every finding can name its path and line.

PyYAML's `safe_load` gives the data, `compose` gives the node tree with marks; walking the tree
once yields a map from each path (a tuple of keys and indexes) to its 1-based line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from migration import safe_files

from .report import CheckInputError


@dataclass
class SpecFile:
    """A parsed spec: its data, the line of every path, and keys given twice in one mapping."""

    path: str
    data: object
    lines: dict[tuple, int] = field(default_factory=dict)
    duplicate_keys: list[tuple] = field(default_factory=list)

    def line(self, parts) -> int | None:
        """The line of `parts`, or of its nearest ancestor that has one."""
        parts = tuple(parts)
        while parts:
            if parts in self.lines:
                return self.lines[parts]
            parts = parts[:-1]
        return self.lines.get(())


class SpecSyntaxError(Exception):
    """The file is not YAML; carries the line so it can be reported as a finding."""

    def __init__(self, message: str, line: int | None):
        super().__init__(message)
        self.line = line


def format_path(parts) -> str:
    """("services", 0, "envs", 2, "value") -> "services[0].envs[2].value"."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


# Set from the CHECK_FILE_MAX_BYTES setting when the app starts; the checks are plain Python.
MAX_BYTES = 1 << 20


def read_text(path) -> str:
    """The file's text; anything but a regular UTF-8 file of at most MAX_BYTES is unusable input
    (a FIFO or device is refused at once, never read)."""
    if not Path(path).exists():
        raise CheckInputError(f"file not found: {path}")
    try:
        return safe_files.read_text(path, MAX_BYTES, "file")
    except safe_files.UnsafeFile as exc:
        raise CheckInputError(str(exc)) from None


def load_spec(path) -> SpecFile:
    """Parse the YAML file at `path`. Raises CheckInputError (unreadable), SpecSyntaxError."""
    text = read_text(path)
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise SpecSyntaxError(f"not valid YAML: {problem}", line) from exc
    spec = SpecFile(str(path), data)
    if root is not None:
        _walk(root, (), spec)
    return spec


def _walk(node, parts: tuple, spec: SpecFile) -> None:
    spec.lines.setdefault(parts, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                spec.duplicate_keys.append(parts + (key,))
            seen.add(key)
            # A key's line is where the key is written, which is where an editor should jump.
            spec.lines[parts + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, parts + (key,), spec)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, parts + (index,), spec)
