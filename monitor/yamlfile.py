"""YAML files validated by pydantic models, with every error located at ``path:line:col``.

PyYAML's composer keeps each node's position; we walk the node tree once to record where every
key and value sits, then translate pydantic's error locations into those positions. All errors of
a file come back in one pass, as analysts fix files in batches, not one error per run.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from monitor.errors import Issue

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]


class Located:
    def __init__(self) -> None:
        self.value: dict[Loc, tuple[int, int]] = {}  # where a value starts
        self.key: dict[Loc, tuple[int, int]] = {}  # where the key naming it starts
        self.issues: list[Issue] = []


def _pos(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _walk(node: yaml.Node, loc: Loc, out: Located, path: str, walked: set[int]) -> None:
    out.value[loc] = _pos(node)
    # An alias is the anchored node itself: walk each node once. Walking it again at every
    # alias recursed forever on an alias inside its own anchor (``a: &x [*x]``: RecursionError)
    # and took exponential time on aliases of aliases (nine levels of nine: a hang). What lies
    # under an alias is located at its anchor (the nearest located parent).
    if id(node) in walked:
        return
    walked.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                line, col = _pos(key_node)
                out.issues.append(
                    Issue(
                        path,
                        line,
                        col,
                        _label((*loc, key)),
                        "duplicate key (the last one would win)",
                    )
                )
            seen.add(key)
            out.key[(*loc, key)] = _pos(key_node)
            _walk(value_node, (*loc, key), out, path, walked)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*loc, i), out, path, walked)


def _label(loc: Loc) -> str:
    """``rules[2].match.any[0]`` — how an author would point at the field."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(file)"


_FRIENDLY = {
    "missing": "is required",
    "extra_forbidden": "unknown key",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "string_type": "must be text",
    "list_type": "must be a list",
    "dict_type": "must be a mapping (key: value)",
    "model_type": "must be a mapping (key: value)",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
}


def _message(err: Any) -> str:
    kind = err["type"]
    if kind in _FRIENDLY:
        return _FRIENDLY[kind]
    if kind == "string_pattern_mismatch" and err["loc"] and err["loc"][-1] in {"id", "name"}:
        return "use lowercase letters, digits, '-', '_' or '.', starting with a letter or digit"
    msg = str(err["msg"])
    msg = msg.removeprefix("Value error, ")
    if msg.startswith("Input should be "):
        msg = "must be " + msg.removeprefix("Input should be ")
    return msg


def _known_keys(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys the model accepts at ``loc`` (for "did you mean" hints)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        annotation = fields[part].annotation
        current = _inner_model(annotation)
        if current is None:
            return []
    fields = getattr(current, "model_fields", None)
    # As written in YAML: a field's alias where it has one ('except' for except_).
    return [f.alias or name for name, f in fields.items()] if fields else []


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def issues_from_validation(
    exc: ValidationError, located: Located, path: str, model: type[BaseModel]
) -> list[Issue]:
    out: list[Issue] = []
    for err in exc.errors():
        loc: Loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
        hint = ""
        if err["type"] == "extra_forbidden":
            position = located.key.get(loc)
            known = _known_keys(model, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = (
                f"did you mean '{close[0]}'?"
                if close
                else (f"allowed: {', '.join(known)}" if known else "")
            )
        else:
            position = None
        probe = loc
        while position is None:
            position = located.value.get(probe)
            if position is None and not probe:
                position = (1, 1)
            probe = probe[:-1]
        line, col = position
        out.append(Issue(path, line, col, _label(loc), _message(err), hint=hint))
    return out


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``22:00`` as the base-60 integer 1320; rule files hold clock times, so
    numbers are resolved as YAML 1.2 does (no sexagesimal): ``22:00`` stays a string."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # PyYAML's constructors let plain exceptions out for a value its tag cannot hold: a date
        # that is no date (``2021-02-30``: ValueError), ``!!int x``, ``!!bool x`` (KeyError), an
        # empty ``!!float`` (IndexError) or ``!!timestamp`` (AttributeError). They escaped
        # load_model as crashes; as a ConstructorError each is an issue at its line and column.
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except RecursionError:
            raise
        except Exception as exc:
            kind = str(node.tag).rsplit(":", 1)[-1]
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read this value as {kind} ({exc})", node.start_mark
            ) from None


_NUMBER_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _NUMBER_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(
        r"^(?:[-+]?0b[0-1_]+|[-+]?0o?[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"
    ),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def load_model(path: Path, model: type[M]) -> tuple[M | None, list[Issue], Located]:
    """Parse and validate one YAML file. Returns the model (None on error) and every issue."""
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Issue(shown, 1, 1, "(file)", f"cannot read: {exc}")], Located()
    located = Located()
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return None, [Issue(shown, line, col, "(yaml)", str(exc.problem or exc))], located
    except yaml.YAMLError as exc:
        return None, [Issue(shown, 1, 1, "(yaml)", str(exc))], located
    except RecursionError:  # PyYAML composes nested collections recursively: "[[[[..." crashed
        return None, [Issue(shown, 1, 1, "(yaml)", "nested too deeply")], located
    if node is not None:
        _walk(node, (), located, shown, set())
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [Issue(shown, 1, 1, "(file)", "must be a mapping at the top level")], located
    try:
        result = model.model_validate(data)
    except ValidationError as exc:
        return None, located.issues + issues_from_validation(exc, located, shown, model), located
    return (None if located.issues else result), located.issues, located


def position(located: Located, loc: Loc) -> tuple[int, int]:
    """Where ``loc`` (or its nearest located parent) sits in the file."""
    probe = loc
    while probe and probe not in located.value:
        probe = probe[:-1]
    return located.value.get(probe, (1, 1))
