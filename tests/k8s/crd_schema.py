"""A CRD's `openAPIV3Schema` as the API server applies it, for offline validation.

The API server does more than JSON Schema: it fills `default`s before validating, treats
`nullable`, `x-kubernetes-int-or-string` and `x-kubernetes-preserve-unknown-fields` specially,
checks `x-kubernetes-list-type` uniqueness, and (with `kubectl apply`'s default strict field
validation) rejects fields the schema does not know. This module reproduces those parts so that
`jsonschema` gives the answer the API server would. CEL rules (`x-kubernetes-validations`) are
collected, not evaluated here.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema

Schema = dict[str, Any]


def to_json_schema(schema: Schema) -> Schema:
    """Translates a structural OpenAPI v3 schema into strict JSON Schema (draft 2020-12)."""
    out: Schema = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "default", "example"):
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "not") and isinstance(value, dict):
            out[key] = to_json_schema(value)
        elif key == "additionalProperties" and isinstance(value, dict):
            out[key] = to_json_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_json_schema(sub) for sub in value]
        else:
            out[key] = copy.deepcopy(value)

    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = out.get("anyOf", []) + [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    # Strict field validation: an object with declared properties rejects unknown ones, unless
    # the schema keeps unknown fields or is an embedded resource.
    if (out.get("type") == "object" or "properties" in out) and "additionalProperties" not in out:
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") or schema.get(
            "x-kubernetes-embedded-resource")
        if not preserve:
            out["additionalProperties"] = False
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set":
        out["uniqueItems"] = True
    return out


def apply_defaults(schema: Schema, value: Any) -> Any:
    """Fills `default`s into `value` the way the API server does (recursively, on a copy)."""
    value = copy.deepcopy(value)
    _default(schema, value)
    return value


def _default(schema: Schema, value: Any) -> None:
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                _default(sub, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name, item in value.items():
                if name not in schema.get("properties", {}):
                    _default(extra, item)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _default(schema["items"], item)


def list_map_errors(schema: Schema, value: Any, path: str = "") -> list[str]:
    """Duplicate keys in `x-kubernetes-list-type: map` lists (JSON Schema cannot say this)."""
    errors: list[str] = []
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                errors += list_map_errors(sub, value[name], f"{path}.{name}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        if schema.get("x-kubernetes-list-type") == "map":
            keys = schema.get("x-kubernetes-list-map-keys", [])
            seen = set()
            for item in value:
                key = tuple(item.get(k) for k in keys)
                if key in seen:
                    errors.append(f"{path}: duplicate entry with {dict(zip(keys, key))}")
                seen.add(key)
        for index, item in enumerate(value):
            errors += list_map_errors(schema["items"], item, f"{path}[{index}]")
    return errors


def cel_rules(schema: Schema, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every `x-kubernetes-validations` rule with the path of the schema node it sits on."""
    found = [(path, rule) for rule in schema.get("x-kubernetes-validations", [])]
    for name, sub in schema.get("properties", {}).items():
        found += cel_rules(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        found += cel_rules(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        found += cel_rules(schema["additionalProperties"], f"{path}{{}}")
    return found


def served_version(crd: dict[str, Any], api_version: str) -> dict[str, Any]:
    group, _, version = api_version.partition("/")
    assert group == crd["spec"]["group"], f"{api_version} is not in group {crd['spec']['group']}"
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            assert entry["served"], f"{api_version} is not served"
            return entry
    raise AssertionError(f"the CRD has no version {version}")


def validate(crd: dict[str, Any], document: dict[str, Any]) -> list[str]:
    """Every reason the API server would reject `document` on create (CEL aside).

    Returns an empty list for a valid document.
    """
    assert document.get("kind") == crd["spec"]["names"]["kind"], document.get("kind")
    version = served_version(crd, document["apiVersion"])
    schema = version["schema"]["openAPIV3Schema"]
    defaulted = apply_defaults(schema, document)
    strict = to_json_schema(schema)
    # apiVersion, kind and metadata are checked by the API server itself, not by the schema.
    strict.setdefault("properties", {}).update(
        {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}})
    validator = jsonschema.Draft202012Validator(strict)
    errors = [
        f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in validator.iter_errors(defaulted)
    ]
    errors += list_map_errors(schema, defaulted)
    name = document.get("metadata", {}).get("name", "")
    if not name:
        errors.append("metadata.name: required")
    return errors


def _values_at(value: Any, path: str) -> list[Any]:
    """The values a rule at schema `path` (as built by `cel_rules`) sees as `self`."""
    values = [value]
    for part in path.replace("[]", ".[]").replace("{}", ".{}").split(".")[1:]:
        nxt: list[Any] = []
        for current in values:
            if part == "[]" and isinstance(current, list):
                nxt.extend(current)
            elif part == "{}" and isinstance(current, dict):
                nxt.extend(current.values())
            elif isinstance(current, dict) and part in current:
                nxt.append(current[part])
        values = nxt
    return values


def cel_errors(crd: dict[str, Any], document: dict[str, Any],
               old: dict[str, Any] | None = None) -> list[str]:
    """Messages of the CEL rules `document` breaks, evaluated with the `cel` package (the
    Rust cel interpreter) on the defaulted object, as the API server does.

    Without `old` this is a create, and transition rules (those using `oldSelf`) do not run.
    With `old` it is an update from `old`: transition rules run where both versions have a
    value at the rule's path (rules under list items are not correlated here and are skipped).
    """
    import cel  # common-expression-language

    version = served_version(crd, document["apiVersion"])
    schema = version["schema"]["openAPIV3Schema"]
    defaulted = apply_defaults(schema, document)
    previous = apply_defaults(schema, old) if old is not None else None
    errors = []
    for path, rule in cel_rules(schema):
        message = f"{path or '<root>'}: {rule.get('message') or rule['rule']}"
        if "oldSelf" in rule["rule"]:
            if previous is None or "[]" in path or "{}" in path:
                continue
            new_values, old_values = _values_at(defaulted, path), _values_at(previous, path)
            if new_values and old_values:
                context = {"self": new_values[0], "oldSelf": old_values[0]}
                if cel.evaluate(rule["rule"], context) is not True:
                    errors.append(message)
            continue
        for value in _values_at(defaulted, path):
            if cel.evaluate(rule["rule"], {"self": value}) is not True:
                errors.append(message)
    return errors
