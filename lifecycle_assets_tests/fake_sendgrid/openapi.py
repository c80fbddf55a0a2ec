"""SendGrid's published OpenAPI documents turned into precompiled request validators.

The fake server must reject what the real SendGrid would reject, so every request is checked
against the operation SendGrid itself documents: path template, path/query/header parameters
and the JSON request body. Validators are built once per operation (bodies of 1000
personalizations are validated on every mail send), with `$ref`s inlined so validation does
not pay for reference lookups on every array item.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator, FormatChecker

SPEC_FILES = (
    "tsg_mail_v3.json",
    "tsg_mc_contacts_v3.json",
    "tsg_mc_custom_fields_v3.json",
    "tsg_mc_lists_v3.json",
    "tsg_suppressions_v3.json",
    "tsg_templates_v3.json",
)
HTTP_METHODS = ("get", "put", "post", "delete", "patch")
MAX_REPORTED_ERRORS = 20

# SendGrid rejects addresses without a local part, an '@' and a dotted domain; a deliberately
# simple rule, close to what the API reports as "Does not contain a valid address".
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DYNAMIC_TEMPLATE_ID_PATTERN = r"^(d-[0-9a-f]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"


def is_valid_email(value: object) -> bool:
    return isinstance(value, str) and EMAIL_PATTERN.match(value) is not None


def _build_format_checker() -> FormatChecker:
    """Formats SendGrid enforces on requests; `uri` and friends only appear in responses."""
    checker = FormatChecker(formats=())

    @checker.checks("email")
    def _email(value: object) -> bool:
        return not isinstance(value, str) or is_valid_email(value)

    @checker.checks("uuid", raises=ValueError)
    def _uuid(value: object) -> bool:
        if isinstance(value, str):
            uuid.UUID(value)
        return True

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if isinstance(value, str):
            dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True

    return checker


FORMAT_CHECKER = _build_format_checker()


class SpecError(Exception):
    """The spec documents could not be loaded or contain something this loader cannot handle."""


@dataclass(frozen=True)
class ValidationProblem:
    """One reason a request is invalid, already in SendGrid's error-object shape."""

    field: str | None
    message: str

    def as_sendgrid_error(self) -> dict[str, Any]:
        return {"field": self.field, "message": self.message}


@dataclass
class Parameter:
    name: str
    location: str  # "path", "query" or "header"
    required: bool
    schema: dict[str, Any]
    validator: Draft202012Validator


@dataclass
class Operation:
    """One documented (method, path template) with its precompiled validators."""

    method: str
    path_template: str
    operation_id: str
    spec_file: str
    parameters: list[Parameter] = field(default_factory=list)
    body_schema: dict[str, Any] | None = None
    body_validator: Draft202012Validator | None = None
    body_required: bool = False
    response_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)

    def validate_parameters(
        self, path_params: dict[str, str], query: dict[str, list[str]], headers: dict[str, str]
    ) -> list[ValidationProblem]:
        problems: list[ValidationProblem] = []
        lowered_headers = {name.lower(): value for name, value in headers.items()}
        for parameter in self.parameters:
            if parameter.location == "path":
                raw: str | None = path_params.get(parameter.name)
            elif parameter.location == "query":
                values = query.get(parameter.name)
                raw = values[-1] if values else None
            elif parameter.location == "header":
                raw = lowered_headers.get(parameter.name.lower())
            else:  # cookies are never used by SendGrid
                continue
            if raw is None:
                if parameter.required:
                    problems.append(
                        ValidationProblem(parameter.name, f"{parameter.name} is a required {parameter.location} parameter")
                    )
                continue
            value = coerce_parameter(raw, parameter.schema)
            for error in itertools.islice(parameter.validator.iter_errors(value), 3):
                problems.append(ValidationProblem(parameter.name, f"{parameter.name}: {error.message}"))
        return problems

    def validate_body(self, body: Any) -> list[ValidationProblem]:
        if self.body_validator is None:
            return []
        errors = itertools.islice(self.body_validator.iter_errors(body), MAX_REPORTED_ERRORS)
        return sorted((_problem_from_error(error) for error in errors), key=lambda p: (p.field or "", p.message))


def coerce_parameter(raw: str, schema: dict[str, Any]) -> Any:
    """Query strings are text; convert to the documented type so the schema can judge it."""
    types = schema.get("type")
    if isinstance(types, str):
        types = [types]
    types = types or []
    if "integer" in types:
        try:
            return int(raw)
        except ValueError:
            return raw
    if "number" in types:
        try:
            number = float(raw)
        except ValueError:
            return raw
        return int(number) if number.is_integer() else number
    if "boolean" in types:
        return {"true": True, "false": False}.get(raw.lower(), raw)
    return raw


def _problem_from_error(error: jsonschema.ValidationError) -> ValidationProblem:
    path = error.json_path
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        if missing:
            path = f"{path}.{missing[0]}"
    field_path = None if path == "$" else path.removeprefix("$.")
    return ValidationProblem(field_path, _concise_message(error))


def _concise_message(error: jsonschema.ValidationError) -> str:
    """jsonschema's message without the offending value where that could be long or personal.

    It repeats the whole instance (megabytes for a 1001-item array) and would echo a customer's
    email address into whatever log the caller writes the error to.
    """
    instance = error.instance
    if isinstance(instance, str):
        return error.message.replace(repr(instance), "value")
    if len(error.message) <= 300:
        return error.message
    size = f" of {len(instance)} items" if isinstance(instance, (list, dict)) else ""
    return f"{type(instance).__name__}{size} fails '{error.validator}': {error.validator_value!r}"[:300]


# --- spec loading -------------------------------------------------------------------------


def _resolve_pointer(document: dict[str, Any], reference: str) -> Any:
    if not reference.startswith("#/"):
        raise SpecError(f"only local references are supported, got {reference!r}")
    node: Any = document
    for part in reference[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _to_json_schema(document: dict[str, Any], node: Any, seen: tuple[str, ...] = ()) -> Any:
    """Inline `$ref`s and translate OpenAPI-only keywords into plain JSON Schema 2020-12."""
    if isinstance(node, list):
        return [_to_json_schema(document, item, seen) for item in node]
    if not isinstance(node, dict):
        return node
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("example", "examples", "description", "title", "$ref", "nullable", "discriminator", "xml"):
            continue
        if key in ("properties", "patternProperties", "$defs"):
            result[key] = {name: _to_json_schema(document, sub, seen) for name, sub in value.items()}
        else:
            result[key] = _to_json_schema(document, value, seen)
    # OpenAPI 3.0 `nullable: true` (still present in these 3.1 documents) is a type union.
    if node.get("nullable") is True and "type" in result:
        types = result["type"] if isinstance(result["type"], list) else [result["type"]]
        result["type"] = [*types, "null"] if "null" not in types else types
    reference = node.get("$ref")
    if reference is not None:
        if reference in seen:
            raise SpecError(f"recursive schema reference {reference!r} cannot be inlined")
        target = _to_json_schema(document, _resolve_pointer(document, reference), (*seen, reference))
        if not result:
            return target
        # `$ref` with sibling keywords: both must hold (JSON Schema 2020-12 semantics).
        result.setdefault("allOf", []).append(target)
    return result


def _dereference(document: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = _resolve_pointer(document, node["$ref"])
    return node


def _apply_corrections(spec_file: str, document: dict[str, Any]) -> None:
    """Fix places where the published documents disagree with what SendGrid actually accepts.

    Each correction states the evidence; without them the fake would reject requests the
    official `sendgrid` client and the real API exchange every day.
    """
    paths = document["paths"]
    if spec_file == "tsg_mail_v3.json":
        body = paths["/v3/mail/send"]["post"]["requestBody"]
        schema = _dereference(document, body)["content"]["application/json"]["schema"]
        # Documented as a string, but the v3 Mail Send reference and the official client's
        # `Mail.get()` send message-level custom_args as an object of string values.
        schema["properties"]["custom_args"] = {"type": "object", "additionalProperties": {"type": "string"}}
        # Personalization-level custom_args: values must be strings ("Custom args must be strings").
        personalization = schema["properties"]["personalizations"]["items"]["properties"]
        personalization["custom_args"]["additionalProperties"] = {"type": "string"}
    if spec_file == "tsg_templates_v3.json":
        # Dynamic template ids look like "d-<32 hex>", not UUIDs, yet the path parameters say `uuid`.
        for template in paths.values():
            for parameter in template.get("parameters", []):
                if parameter.get("name") in ("template_id",) and parameter["schema"].get("format") == "uuid":
                    parameter["schema"] = {"type": "string", "pattern": DYNAMIC_TEMPLATE_ID_PATTERN}
        # Responses carry the same "d-" ids where the documents promise 36-character UUIDs.
        schemas = document["components"]["schemas"]
        for name in ("TransactionalTemplate", "TransactionalTemplatesTemplateLean"):
            schemas[name]["properties"]["id"] = {"type": "string", "pattern": DYNAMIC_TEMPLATE_ID_PATTERN}
        # PATCH of a version shares the create schema, whose `required` makes partial edits impossible.
        patch = paths["/v3/templates/{template_id}/versions/{version_id}"]["patch"]
        body = copy.deepcopy(_dereference(document, patch["requestBody"]))
        schema = body["content"]["application/json"]["schema"]
        patch["requestBody"] = body
        body["content"]["application/json"]["schema"] = {
            k: v for k, v in _dereference(document, schema).items() if k != "required"
        }


def _compile(schema: dict[str, Any]) -> Draft202012Validator:
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FORMAT_CHECKER)


def _template_regex(path_template: str) -> re.Pattern[str]:
    pattern = re.sub(r"\\\{([^}]+)\\\}", lambda m: f"(?P<{m.group(1)}>[^/]+)", re.escape(path_template))
    return re.compile(f"^{pattern}$")


@dataclass
class MatchedRoute:
    path_template: str | None
    path_params: dict[str, str]
    operation: Operation | None
    allowed_methods: tuple[str, ...]


class SpecCatalog:
    """All documented SendGrid operations, looked up by method and concrete request path."""

    def __init__(self, spec_dir: Path):
        self.spec_dir = Path(spec_dir)
        self._operations: dict[tuple[str, str], Operation] = {}
        self._templates: list[tuple[str, re.Pattern[str], int]] = []
        for spec_file in SPEC_FILES:
            location = self.spec_dir / spec_file
            if not location.is_file():
                raise SpecError(f"SendGrid OpenAPI document missing: {location}")
            document = json.loads(location.read_text(encoding="utf-8"))
            _apply_corrections(spec_file, document)
            self._load_document(spec_file, document)
        # Literal segments win over templated ones: /bounces/classifications before /bounces/{email}.
        self._templates.sort(key=lambda item: (-item[2], -len(item[0])))

    def _load_document(self, spec_file: str, document: dict[str, Any]) -> None:
        for path_template, path_item in document["paths"].items():
            literal_segments = sum(1 for part in path_template.split("/") if part and not part.startswith("{"))
            self._templates.append((path_template, _template_regex(path_template), literal_segments))
            shared_parameters = path_item.get("parameters", [])
            for method in HTTP_METHODS:
                if method not in path_item:
                    continue
                definition = path_item[method]
                operation = Operation(
                    method=method.upper(),
                    path_template=path_template,
                    operation_id=definition.get("operationId", ""),
                    spec_file=spec_file,
                )
                by_key: dict[tuple[str, str], dict[str, Any]] = {}
                for raw in [*shared_parameters, *definition.get("parameters", [])]:
                    parameter = _dereference(document, raw)
                    by_key[(parameter["name"], parameter["in"])] = parameter
                for (name, location), parameter in by_key.items():
                    schema = _to_json_schema(document, parameter.get("schema", {}))
                    operation.parameters.append(
                        Parameter(name, location, bool(parameter.get("required")), schema, _compile(schema))
                    )
                if "requestBody" in definition:
                    body = _dereference(document, definition["requestBody"])
                    content = body.get("content", {}).get("application/json")
                    if content is not None and "schema" in content:
                        operation.body_schema = _to_json_schema(document, content["schema"])
                        operation.body_validator = _compile(operation.body_schema)
                        operation.body_required = bool(body.get("required", True))
                for status, response in definition.get("responses", {}).items():
                    content = _dereference(document, response).get("content", {}).get("application/json", {})
                    if "schema" in content:
                        operation.response_schemas[str(status)] = _to_json_schema(document, content["schema"])
                self._operations[(operation.method, path_template)] = operation

    def match(self, method: str, path: str) -> MatchedRoute:
        for path_template, regex, _ in self._templates:
            found = regex.match(path)
            if found is None:
                continue
            allowed = tuple(m for (m, template) in self._operations if template == path_template)
            if not allowed:
                continue
            operation = self._operations.get((method.upper(), path_template))
            return MatchedRoute(path_template, found.groupdict(), operation, allowed)
        return MatchedRoute(None, {}, None, ())

    def operation(self, method: str, path_template: str) -> Operation:
        return self._operations[(method.upper(), path_template)]

    def response_problems(self, method: str, path_template: str, status: int, payload: Any) -> list[str]:
        """How a response body departs from the documented schema for that status (tests use this)."""
        schema = self.operation(method, path_template).response_schemas.get(str(status))
        if schema is None:
            return [f"no documented JSON schema for {method} {path_template} {status}"]
        return [f"{error.json_path}: {error.message}" for error in _compile(schema).iter_errors(payload)]
