"""YAML configuration files with positions: load, validate, and say where a problem is.

Shared by the two loaders (`maild/config.py` for maild.yaml, `rules/load.py` for
rules.yaml), so both report problems the same way, like a compiler::

    /etc/maild/maild.yaml:4:3: listen.lmtp: expected host:port or unix:/path, got '2424'

The steps:

1. `load_yaml(path)` parses with the ruamel.yaml round-trip loader, which knows the line and
   column of every key and refuses duplicate keys (PyYAML silently keeps the last one).
   It returns the data as plain Python (dict, list, str, int, float, bool, None) and a
   `Locator` over the parsed tree. A syntax error, a duplicate key or an unreadable file
   raises `ConfigError` with one `ConfigProblem`.
2. `validate(model_cls, data, locator, file)` runs a pydantic model over the plain data and
   turns *every* validation error into a `ConfigProblem` at the position of the key at
   fault (the deepest key of the error's path that exists in the file).
3. A loader then checks what spans several keys (unique addresses, ...) and reports those
   with `problem_at(...)`.

Models for these files derive from `StrictModel`: unknown keys are refused and values are
not coerced (a string where a mapping or a number is expected is an error).

This module imports nothing from maild/ (rules/ is pure).
"""
from __future__ import annotations

import datetime
import difflib
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

__all__ = [
    "Address", "ConfigError", "ConfigProblem", "KeyPath", "Locator", "StrictModel",
    "check_address", "describe", "did_you_mean", "dotted", "load_yaml", "not_one_of", "problem_at", "validate",
]

KeyPath = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong in a configuration file, at a 1-based line and column.

    `key` is the dotted path of the key at fault ('listen.lmtp', 'rules[2].when'), or ''
    when the problem is not about one key (a YAML syntax error). line and column are 0
    when the problem concerns the whole file (it cannot be read).
    """
    file: str
    line: int
    column: int
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(Exception):
    """A configuration file was refused; `problems` lists every reason, in file order."""

    def __init__(self, problems: Iterable[ConfigProblem]):
        self.problems: tuple[ConfigProblem, ...] = tuple(
            sorted(problems, key=lambda p: (p.file, p.line, p.column)))
        super().__init__("\n".join(str(p) for p in self.problems))


# --- positions --------------------------------------------------------------------------

class Locator:
    """Maps a key path to the (line, column), 1-based, of a key in the parsed YAML tree."""

    def __init__(self, tree: Any):
        self._tree = tree

    def where(self, path: Sequence[str | int]) -> tuple[int, int]:
        """Position of the deepest key of `path` that exists in the file.

        For a mapping entry that is the position of its key, for a list entry the position
        of the item; a path that leaves the file early (a missing key) points at its last
        existing ancestor, and the empty path at the start of the document.
        """
        node = self._tree
        line, col = _start(node)
        for part in path:
            try:
                if isinstance(node, CommentedMap) and part in node:
                    line, col = node.lc.key(part)
                elif (isinstance(node, CommentedSeq) and isinstance(part, int)
                      and 0 <= part < len(node)):
                    line, col = node.lc.item(part)
                else:
                    break
            except (KeyError, IndexError, TypeError):   # e.g. a key merged in with '<<'
                break
            node = node[part]
        return line + 1, col + 1


def _start(node: Any) -> tuple[int, int]:
    lc = getattr(node, "lc", None)
    if lc is not None and lc.line is not None:
        return lc.line, lc.col
    return 0, 0


def dotted(path: Sequence[str | int]) -> str:
    """('queues', 'general', 'address') -> 'queues.general.address'; list items as [i]."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def problem_at(file: str | Path, locator: Locator, path: KeyPath, message: str) -> ConfigProblem:
    line, col = locator.where(path)
    return ConfigProblem(str(file), line, col, dotted(path), message)


# --- loading ----------------------------------------------------------------------------

def load_yaml(path: Path) -> tuple[Any, Locator]:
    """Parse `path`; return (plain Python data, Locator). Raises ConfigError.

    Keys must be unique in every mapping. YAML 1.2 rules apply: `yes`, `no`, `on`, `off`
    are strings; only `true` and `false` are booleans. An empty file gives None.
    """
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(file, 0, 0, "", f"cannot read the file: {exc}")]) from None
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False   # the default; stated because the promise depends on it
    try:
        tree = yaml.load(text)
    except YAMLError as exc:
        raise ConfigError([_yaml_problem(file, exc)]) from None
    return _plain(tree), Locator(tree)


def _yaml_problem(file: str, exc: YAMLError) -> ConfigProblem:
    if not isinstance(exc, MarkedYAMLError):
        return ConfigProblem(file, 0, 0, "", f"invalid YAML: {exc}")
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    problem = (exc.problem or "invalid YAML").strip()
    if isinstance(exc, DuplicateKeyError):
        problem = re.sub(r"^found ", "", problem)
        message = f"{problem}; a key may appear only once in a mapping"
    else:
        message = problem
        if exc.context:
            message += f" ({exc.context.strip()}"
            ctx = exc.context_mark
            if ctx and exc.problem_mark and ctx.line != exc.problem_mark.line:
                message += f" that starts at line {ctx.line + 1}"
            message += ")"
    return ConfigProblem(file, line, col, "", message)


def _plain(node: Any) -> Any:
    """The ruamel tree as plain Python values, for validation."""
    if isinstance(node, Mapping):
        return {_plain(k): _plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_plain(v) for v in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):          # ScalarInt, HexInt, ...; after bool (bool is an int)
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):          # ScalarString and its subclasses
        return str(node)
    return node                        # None, dates, tagged scalars: refused by the models


# --- validation -------------------------------------------------------------------------

class StrictModel(BaseModel):
    """Base of the file models: unknown keys refused, no coercion between types."""
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def validate(model_cls: type[M], data: Any, locator: Locator, file: str | Path) -> M:
    """Validate `data` with `model_cls`; every error becomes a located ConfigProblem.

    An empty document counts as an empty mapping, so an empty file lists the missing keys.
    """
    try:
        return model_cls.model_validate({} if data is None else data)
    except ValidationError as exc:
        raise ConfigError(_problem(model_cls, error, locator, str(file))
                          for error in exc.errors()) from None


def _problem(model_cls: type[BaseModel], error: Any, locator: Locator, file: str) -> ConfigProblem:
    path = tuple(part for part in error["loc"] if part != "[key]")
    line, col = locator.where(path)
    return ConfigProblem(file, line, col, dotted(path), _message(model_cls, error, path))


_EXPECTED = {
    "model_type": "a mapping", "model_attributes_type": "a mapping", "dict_type": "a mapping",
    "string_type": "a string", "int_type": "an integer", "bool_type": "true or false",
    "float_type": "a number", "list_type": "a list", "tuple_type": "a list",
}

_BOUND = {"greater_than_equal": ("at least", "ge"), "greater_than": ("more than", "gt"),
          "less_than_equal": ("at most", "le"), "less_than": ("less than", "lt")}


def _message(model_cls: type[BaseModel], error: Any, path: KeyPath) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return _unknown_key(model_cls, path)
    if kind in _EXPECTED:
        what = "a name (string)" if "[key]" in error["loc"] else _EXPECTED[kind]
        return f"expected {what}, got {describe(error.get('input'))}"
    if kind in _BOUND:
        words, ctx_key = _BOUND[kind]
        bound = error.get("ctx", {}).get(ctx_key)
        return f"expected {words} {bound}, got {describe(error.get('input'))}"
    if kind in ("value_error", "assertion_error") and "error" in error.get("ctx", {}):
        return str(error["ctx"]["error"])
    return error["msg"]


def _unknown_key(model_cls: type[BaseModel], path: KeyPath) -> str:
    allowed = _fields_at(model_cls, path[:-1])
    if not allowed:
        return "unknown key"
    return f"unknown key{did_you_mean(path[-1], allowed)} (allowed here: {', '.join(allowed)})"


def _fields_at(model_cls: Any, path: KeyPath) -> tuple[str, ...]:
    """The keys the model accepts at `path` (best effort; () when not a model there)."""
    tp = model_cls
    for part in path:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return ()
            tp = field.annotation
        elif typing.get_origin(tp) in (dict, Mapping):
            tp = typing.get_args(tp)[1]
        elif typing.get_origin(tp) in (list, tuple, Sequence):
            tp = typing.get_args(tp)[0]
        else:
            return ()
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tuple(tp.model_fields)
    return ()


def _unwrap(tp: Any) -> Any:
    """Annotated[X, ...] -> X; X | None -> X."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def did_you_mean(value: Any, known: Iterable[str]) -> str:
    """"; did you mean 'subject'?" for the closest of `known` to `value`, or ''."""
    guess = difflib.get_close_matches(str(value), sorted(known), n=1)
    return f"; did you mean {guess[0]!r}?" if guess else ""


def not_one_of(value: Any, allowed: Sequence[str], kind: str) -> str:
    """"unknown action 'queu'; did you mean 'queue'? (allowed: queue, priority, ...)"."""
    return f"unknown {kind} {value!r}{did_you_mean(value, allowed)} (allowed: {', '.join(allowed)})"


def describe(value: Any) -> str:
    """A value as an error message names it: "string 'yes'", "a list", "an empty value"."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"   # as YAML spells it
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    kinds = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"),
             (datetime.datetime, "timestamp"), (datetime.date, "date"))
    kind = next((name for cls, name in kinds if isinstance(value, cls)), type(value).__name__)
    text = repr(value) if isinstance(value, str) else str(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{kind} {text}"


# --- value types shared by maild.yaml and rules.yaml ------------------------------------

_ADDRESS = re.compile(
    r"[^@\s<>()\[\],;:\"]+@(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")


def check_address(value: str) -> str:
    """A bare mail address, local@domain; returned unchanged (case kept)."""
    if "<" in value or " " in value.strip():
        raise ValueError(f"write the bare address (like support@example.com), got {value!r}")
    if not _ADDRESS.fullmatch(value):
        raise ValueError(f"not a mail address: {value!r}")
    return value


Address = Annotated[str, AfterValidator(check_address)]
