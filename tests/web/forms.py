"""Posting a screen's form the way a browser does: with the CSRF token of its page.

The token is read from the page the form is on (its hidden `csrf_token` field), so a
test posts exactly what a person tapping the button would.
"""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(client: FlaskClient, page: str = "/kiosk") -> str:
    r = client.get(page, follow_redirects=True)
    found = CSRF_FIELD.search(r.get_data(as_text=True))
    assert found, f"no CSRF token on {page} ({r.status_code})"
    return found.group(1)


def post_form(client: FlaskClient, path: str, data: dict[str, Any] | None = None,
              page: str = "/kiosk", **kwargs: Any) -> Any:
    """POST `data` to `path` with the token of `page`, as that page's form would."""
    return client.post(path, data={**(data or {}), "csrf_token": csrf_token(client, page)},
                       **kwargs)
