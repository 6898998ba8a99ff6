"""OpenAPI pieces that serializers cannot describe: the flow definition's JSON Schema and error bodies."""

from __future__ import annotations

NAME = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,100}$"}

INPUT_SPEC = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": ["string", "integer", "number", "boolean", "object", "array"]},
        "default": {},
        "description": {"type": "string"},
        "secret": {"type": "boolean"},
    },
    "additionalProperties": True,
}

STEP = {
    "type": "object",
    "required": ["name", "type"],
    "properties": {
        "name": NAME,
        "type": {"type": "string", "enum": ["template", "python", "http", "sleep", "flow", "fail"]},
        "after": {"type": "array", "items": {"type": "string"}},
        "timeout": {"type": "number"},
        "retries": {"type": "integer", "minimum": 0},
    },
    "additionalProperties": True,
    "description": "one step; the fields beyond these depend on its type (see the README)",
}

FLOW_DEFINITION = {
    "type": "object",
    "required": ["name", "steps"],
    "properties": {
        "name": NAME,
        "version": {"type": "integer", "minimum": 1, "description": "ignored: the store assigns versions"},
        "description": {"type": "string"},
        "inputs": {"type": "object", "additionalProperties": INPUT_SPEC},
        "steps": {"type": "array", "items": STEP},
        "outputs": {"type": "object", "additionalProperties": True},
    },
    "additionalProperties": False,
    "description": "a flow definition, as JSON or YAML (no anchors or aliases)",
}

FLOW_REQUEST = {"application/json": FLOW_DEFINITION, "application/yaml": FLOW_DEFINITION}
