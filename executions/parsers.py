"""Request body parsers: flow definitions may be posted as YAML too."""

from __future__ import annotations

from typing import Any

import yaml
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser


class YAMLParser(BaseParser):
    """Parse application/yaml bodies with the safe loader (no object construction)."""

    media_type = "application/yaml"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return yaml.safe_load(stream.read())
        except yaml.YAMLError as exc:
            raise ParseError(f"YAML parse error: {exc}") from exc
