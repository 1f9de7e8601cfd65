"""The auth header for a server behind a proxy or a token, and the Comfy Cloud API key,
read from the environment."""

from __future__ import annotations

import os
import re

from comfytest.errors import ServerError

__all__ = ["auth_hint", "cloud_key", "header_from_env"]


def header_from_env(name: str) -> tuple[str, str]:
    """The header that environment variable ``name`` holds, for a server behind auth.

    ``Name: value`` (a header name, a colon and a space) is sent as that header; anything
    else is a token, sent as ``Authorization: Bearer <token>``. The value is never shown:
    a missing or empty variable is reported by its name only."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise ServerError(f"the environment variable {name} (the auth header) is not set")
    full = re.fullmatch(r"([A-Za-z0-9-]+): (.+)", value, re.DOTALL)
    if full:
        return full.group(1), full.group(2).strip()
    return "Authorization", f"Bearer {value}"


def cloud_key(name: str) -> str:
    """The Comfy Cloud API key environment variable ``name`` holds; like the header, it is
    never shown: a missing or empty variable is reported by its name only."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise ServerError(f"the environment variable {name} (the Comfy Cloud API key) is not set")
    return value


def auth_hint(auth_env: str | None) -> str:
    """What to do about a server that asks for credentials (HTTP 401 or 403)."""
    if auth_env:
        return (
            f"the auth header from ${auth_env} was refused: check its value (a token is sent "
            "as 'Authorization: Bearer <token>'; 'Header-Name: value' sends that header)"
        )
    return (
        "it asks for credentials: put the token (or 'Header-Name: value') in an environment "
        "variable and pass --comfy-auth-env=NAME"
    )
