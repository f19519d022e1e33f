"""Which Label Studio to talk to: the one given, else the local server verify started; and its logins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from verify.labelstudio import server
from verify.labelstudio.client import LabelStudioClient, new_password, version_warning


def connect(url: str | None, api_key: str | None) -> tuple[LabelStudioClient, str | None]:
    """A client for the given server, or for the local one when nothing is given, checked by asking who we are.

    Returns (client, warning): the warning names a Label Studio release with a known advisory.
    Raises:
        ServerError: no URL, or the server cannot be reached. AuthError: no or a refused key.
    """
    local = server.credentials()
    if not url and local:
        url = local["url"]
    if not api_key and local and url and url.rstrip("/") == local["url"]:
        api_key = local["api_key"]
    client = LabelStudioClient(url or "", api_key or "")
    client.whoami()
    return client, version_warning(client.version())


def files_root_for(client: LabelStudioClient, files_root: str | Path | None) -> Path | None:
    """The server's local-files root: the one given, the local server's when the client talks to it, else None."""
    if files_root:
        return Path(files_root)
    local = server.credentials()
    if local and client.url == local["url"]:
        return Path(local["files_root"])
    return None


def add_reviewer(client: LabelStudioClient, email: str, password: str | None = None) -> tuple[dict[str, Any], str]:
    """Create a reviewer account; on the local server keep the login in its one secrets file (mode 600).

    Returns (user, password): a random password when none was given.
    """
    chosen = password or new_password()
    user = client.add_reviewer(email, chosen)
    local = server.credentials()
    if local and local["url"] == client.url:
        local["reviewers"] = [r for r in local.get("reviewers", []) if r["email"] != email] + [{"email": email, "password": chosen}]
        server.save_credentials(local)
    return user, chosen
