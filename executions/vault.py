"""Secret input values at rest: encrypted (Fernet) while an execution is pending or running.

The key is FLOWEXEC_SECRETS_KEY, or DJANGO_SECRET_KEY when that is unset, stretched to a Fernet key,
so any process with the same settings (a Celery worker) can read what the service sealed.
services erases the sealed values when the execution finishes, whichever way it finishes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from executions import conf


class SecretsUnreadable(Exception):
    """The sealed values were sealed with another key (a process with different settings)."""


@functools.lru_cache(maxsize=4)
def _fernet(key: str) -> Fernet:
    # A purpose-bound SHA-256 of a high-entropy key: the same 32 bytes in every process.
    digest = hashlib.sha256(b"flowexec secret inputs\x00" + key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _key() -> str:
    return conf.get("FLOWEXEC_SECRETS_KEY") or settings.SECRET_KEY


def seal(values: Mapping[str, Any]) -> str:
    """Encrypt a mapping of secret input values; "" when there are none."""
    if not values:
        return ""
    return _fernet(_key()).encrypt(json.dumps(dict(values)).encode()).decode()


def unseal(token: str) -> dict[str, Any]:
    """Decrypt what seal() made; SecretsUnreadable when another key sealed it."""
    if not token:
        return {}
    try:
        return json.loads(_fernet(_key()).decrypt(token.encode()))
    except InvalidToken as exc:
        raise SecretsUnreadable(
            "secret inputs cannot be decrypted here: FLOWEXEC_SECRETS_KEY (or DJANGO_SECRET_KEY) differs "
            "from the submitting process's"
        ) from exc
