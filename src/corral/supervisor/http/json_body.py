"""The one JSON loader every request body goes through.

Python's ``json`` accepts more than JSON: ``NaN`` and ``Infinity`` (which later serialise as
bare words no client can parse, and made the scheduler spin on a NaN deadline), numbers like
``1e400`` that become infinity, lone UTF-16 surrogates (``"\\ud800"``) that no UTF-8 encoder
takes, and nesting so deep that the parser overflows. Each is refused here with a 400, before
any model sees the value, so no later stage has to guard against it.
"""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any, NoReturn, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from corral.supervisor.errors import BadRequest, UnsupportedMediaType

log = logging.getLogger("corral.api")

M = TypeVar("M", bound=BaseModel)
# The only way valid UTF-8 JSON text can hold a surrogate is an escape; scan for one first,
# so the walk over every string runs only for the rare body that has one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _check_strings(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            item.encode("utf-8")  # raises UnicodeEncodeError on a lone surrogate
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def loads_strict(raw: bytes | str) -> Any:
    """Parse JSON text; a ``BadRequest`` (``invalid_json``) for anything that is not JSON."""
    try:
        data = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
        if _SURROGATE_ESCAPE.search(raw.encode() if isinstance(raw, str) else raw):
            _check_strings(data)
    except RecursionError:
        raise BadRequest("the body is nested too deeply", code="invalid_json") from None
    except UnicodeError:
        raise BadRequest(
            "the body is not valid UTF-8 (or holds a lone surrogate escape)", code="invalid_json"
        ) from None
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", code="invalid_json") from None
    return data


def parse_body(model: type[M], raw: bytes) -> M:
    """Parse a JSON body into ``model``; every failure is a 400 naming the field."""
    data = loads_strict(raw)
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object", code="invalid_json")
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        # A union reports one error per member it tried. The one about what the client meant
        # is a broken rule (too long, out of range) rather than a wrong type, and among those
        # the one that got furthest into the value ("prompt.0", not "prompt").
        first = max(
            exc.errors(),
            key=lambda e: (
                not e["type"].endswith(("_type", "_parsing")),
                len(field_path(e["loc"]).split(".")),
            ),
        )
        where = field_path(first["loc"])
        if first["type"] == "extra_forbidden":
            raise BadRequest(
                f"unknown field '{where}': Corral does not support it",
                param=where,
                code="unknown_parameter",
            ) from None
        raise BadRequest(
            f"{where}: {first['msg']}" if where else first["msg"], param=where or None
        ) from None
    if parsed.model_extra:
        log.debug("ignored request fields: %s", ", ".join(sorted(parsed.model_extra)))
    return parsed


# pydantic names the member of a union it tried ("str", "list[int]", "TextPart",
# "function-after[...]") among the field names: such a step is no part of the request.
_FIELD_STEP = re.compile(r"[a-z_][a-z0-9_]*")
_TYPE_NAMES = frozenset({"str", "int", "float", "bool", "list", "dict", "none", "tuple", "any"})


def field_path(loc: tuple[int | str, ...]) -> str:
    """A validation error's location as the request names it: ``messages.0.content``."""
    steps = [
        str(step)
        for step in loc
        if isinstance(step, int) or (_FIELD_STEP.fullmatch(step) and step not in _TYPE_NAMES)
    ]
    return ".".join(steps)


def is_json_type(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


async def read_body(request: web.Request, model: type[M]) -> M:
    """The request's JSON body as ``model``; other content types are a 415.

    HTML forms can post only form and text types across sites without a CORS preflight, so
    insisting on JSON also keeps a page from another origin from posting to us at all.
    """
    if not is_json_type(request.content_type):
        raise UnsupportedMediaType(
            f"send the body as JSON (Content-Type: application/json), not "
            f"{request.headers.get('Content-Type', 'no content type')!r}"[:200],
        )
    return parse_body(model, await request.read())
