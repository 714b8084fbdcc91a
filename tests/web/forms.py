"""Posting a screen's form the way a browser does: with the CSRF token of its page.

The token is read from the page the form is on (its hidden `csrf_token` field), so a
test posts exactly what a person tapping the button would.
"""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient

# What the kiosk's consent screen sends with the chosen procedure.
AGREE = {"consent": "accept"}
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


DOSSIER_FIELD = re.compile(r'name="dossier" value="([A-Za-z0-9_-]+)"')


def page_fields(client: FlaskClient, page: str = "/kiosk") -> dict[str, str]:
    """The hidden fields every form of `page` carries: its CSRF token and, on a kiosk
    dossier screen, the id of the dossier the screen shows."""
    r = client.get(page, follow_redirects=True)
    text = r.get_data(as_text=True)
    found = CSRF_FIELD.search(text)
    assert found, f"no CSRF token on {page} ({r.status_code})"
    fields = {"csrf_token": found.group(1)}
    dossier = DOSSIER_FIELD.search(text)
    if dossier:
        fields["dossier"] = dossier.group(1)
    return fields


def csrf_token(client: FlaskClient, page: str = "/kiosk") -> str:
    return page_fields(client, page)["csrf_token"]


def post_form(client: FlaskClient, path: str, data: dict[str, Any] | None = None,
              page: str = "/kiosk", **kwargs: Any) -> Any:
    """POST `data` to `path` with the hidden fields of `page`, as that page's form would."""
    return client.post(path, data={**page_fields(client, page), **(data or {})}, **kwargs)
