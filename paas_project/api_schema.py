"""drf-spectacular post-processing: make the schema as strict as the server where the
serializers cannot say it themselves."""

from __future__ import annotations

from typing import Any

# DRF's CharField refuses NUL characters (ProhibitNullCharactersValidator).
NO_NUL = "^[^\\x00]*$"


def forbid_nul_characters(result: dict[str, Any], generator: Any, request: Any,
                          public: bool) -> dict[str, Any]:
    """Every free-text string we accept (request bodies, query and path parameters)
    gets a pattern that excludes NUL, as the server does."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request"):
            for prop in component.get("properties", {}).values():
                _no_nul(prop)
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                _no_nul(parameter.get("schema", {}))
    return result


def _no_nul(schema: dict[str, Any]) -> None:
    if schema.get("type") == "string" and not {"pattern", "format", "enum"} & schema.keys():
        schema["pattern"] = NO_NUL
