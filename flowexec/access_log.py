"""gunicorn's logger with redacted access lines: request URIs, query strings, referers and credential headers."""

# gunicorn's master creates the logger, so this module imports nothing of Django; the rules are
# tracing/redaction.py's (the OTel HTTP semantic conventions' sensitive query values, the key list).

from __future__ import annotations

from typing import Any

from gunicorn import glogging

from tracing.redaction import REDACTED, is_sensitive, redact_url


class RedactingLogger(glogging.Logger):
    """Access log atoms with sensitive query values and credential headers replaced, whatever the format."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        """gunicorn's atoms (`%(r)s`, `%(q)s`, `%(f)s`, `%({header}i)s`, ...) with secrets redacted."""
        atoms = super().atoms(resp, req, environ, request_time)
        uri = redact_url(environ.get("RAW_URI") or "")
        atoms["r"] = f"{environ['REQUEST_METHOD']} {uri} {environ['SERVER_PROTOCOL']}"
        if query := atoms.get("q"):
            atoms["q"] = redact_url(f"?{query}")[1:]
        if atoms.get("f") not in (None, "-"):
            atoms["f"] = redact_url(atoms["f"])
        for key in atoms:
            if key.startswith("{") and key[-2:] in ("}i", "}o") and is_sensitive(key[1:-2]):
                atoms[key] = REDACTED
        return atoms
