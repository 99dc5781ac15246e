"""``response_format`` and llama-server's ``grammar``/``json_schema``: output held to a grammar.

A JSON schema becomes a grammar in the child (llama.cpp's converter). The converter honours
only some keywords; one it would ignore (``minimum``, say) would let the model break the
schema, so such a schema is refused here, naming the keyword, before any model loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from corral.supervisor.errors import BadRequest

# Keywords the grammar enforces, and those that only describe (and constrain nothing).
ENFORCED = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "prefixItems",
        "minItems",
        "maxItems",
        "anyOf",
        "oneOf",
        "allOf",
        "const",
        "enum",
        "pattern",
        "minLength",
        "maxLength",
        "format",
        "$ref",
        "$defs",
        "definitions",
    }
)
ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "default",
        "examples",
        "$schema",
        "$id",
        "$comment",
        "deprecated",
        "readOnly",
        "writeOnly",
        "strict",
    }
)
TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
FORMATS = frozenset({"date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4"})
MAX_DEPTH = 32
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JsonSchemaSpec(_Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class TextFormat(_Strict):
    type: Literal["text"]


class JsonObjectFormat(_Strict):
    type: Literal["json_object"]


class JsonSchemaFormat(_Strict):
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


ResponseFormat = Annotated[
    TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")
]


def check_schema(schema: Any, param: str, depth: int = 0) -> None:
    """Refuse what the grammar could not enforce, naming the keyword's place in the request."""
    if isinstance(schema, bool):
        return  # true: anything; false under additionalProperties: nothing more
    if not isinstance(schema, Mapping):
        raise BadRequest("a JSON schema is an object", param=param, code="invalid_schema")
    if depth > MAX_DEPTH:
        raise BadRequest(
            f"the JSON schema nests deeper than {MAX_DEPTH} levels", param=param
        )  # fmt: skip
    for key, value in schema.items():
        where = f"{param}.{key}"
        if key in ANNOTATIONS:
            continue
        if key not in ENFORCED:
            raise BadRequest(
                f"the JSON schema keyword '{key}' is not supported: output is held to the "
                "schema by a grammar, which cannot enforce it",
                param=where,
                code="unsupported_schema",
            )
        _check_keyword(key, value, where, depth)


def _check_keyword(key: str, value: Any, where: str, depth: int) -> None:
    if key == "type":
        kinds = value if isinstance(value, list) else [value]
        if not kinds or any(k not in TYPES for k in kinds):
            raise BadRequest(f"type is one of {sorted(TYPES)}", param=where)
    elif key == "format" and value not in FORMATS:
        raise BadRequest(
            f"the string format {str(value)[:40]!r} is not supported; "
            f"supported: {', '.join(sorted(FORMATS))}",
            param=where,
            code="unsupported_schema",
        )
    elif key == "$ref" and not (isinstance(value, str) and value.startswith("#/")):
        raise BadRequest("only local references ('#/...') are supported", param=where)
    elif key in _SUBSCHEMA_MAPS:
        if not isinstance(value, Mapping):
            raise BadRequest(f"{key} is an object of schemas", param=where)
        for name, sub in value.items():
            check_schema(sub, f"{where}.{name}", depth + 1)
    elif key in _SUBSCHEMA_LISTS:
        if not isinstance(value, list) or not value:
            raise BadRequest(f"{key} is a list of schemas", param=where)
        for i, sub in enumerate(value):
            check_schema(sub, f"{where}.{i}", depth + 1)
    elif key in ("items", "additionalProperties"):
        subs = value if isinstance(value, list) else [value]
        for i, sub in enumerate(subs):
            check_schema(sub, where if len(subs) == 1 else f"{where}.{i}", depth + 1)


def output_grammar(
    response_format: TextFormat | JsonObjectFormat | JsonSchemaFormat | None,
    grammar: str | None,
    json_schema: dict[str, Any] | None,
) -> dict[str, Any]:
    """The ``Generate`` fields (``grammar``/``json_schema``) that constrain the answer."""
    if isinstance(response_format, TextFormat):
        response_format = None
    fields = (
        ("response_format", response_format),
        ("grammar", grammar),
        ("json_schema", json_schema),
    )
    given = [name for name, value in fields if value is not None]
    if len(given) > 1:
        raise BadRequest(
            f"give one of {', '.join(given)}: each constrains the whole answer", param=given[1]
        )
    if isinstance(response_format, JsonObjectFormat):
        return {"json_schema": {"type": "object"}}
    if isinstance(response_format, JsonSchemaFormat):
        schema = response_format.json_schema.schema_
        check_schema(schema, "response_format.json_schema.schema")
        return {"json_schema": schema or {"type": "object"}}
    if json_schema is not None:
        check_schema(json_schema, "json_schema")
        return {"json_schema": json_schema}
    if grammar is not None:
        if not grammar.strip():
            raise BadRequest("grammar is empty", param="grammar")
        return {"grammar": grammar}
    return {}
