"""Dossiers named by their public id, the only dossier id a browser ever sees (issue 8).

Row ids are sequential: in a URL, a form or a JSON body they would let anyone count
the dossiers and guess the next one. Routes take the public id (`<public_id:...>`, a
URL-safe string of 16 to 64 characters, so a bare integer matches no route) and views
turn it into the row id here, once, answering 404 (`DossierNotFound`) when it names
nothing, as the Flask tutorial's `get_post` does. Access is not decided here: the
blueprint guards still do that.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from werkzeug.routing import BaseConverter

from appliance.records import dossiers
from appliance.records.errors import DossierNotFound
from appliance.web.db import get_db
from appliance.web.openapi import PUBLIC_ID_PATTERN


class PublicIdConverter(BaseConverter):
    """`<public_id:dossier_id>`: a dossier's public id; anything else matches no route."""

    regex = PUBLIC_ID_PATTERN


def dossier_row(public_id: str) -> int:
    """The row id of the dossier `public_id` names; 404 when it names none.

    The 404 is `DossierNotFound`'s, through the one error handler: its message says
    what is missing and the officer's screens lead back to the list from it.
    """
    return dossiers.by_public_id(get_db(), public_id)


def dossier_owner(conn: sqlite3.Connection, args: dict[str, Any]) -> set[int]:
    """For `auth.access`: the dossier the URL names, or none (the guard then refuses)."""
    try:
        return {dossiers.by_public_id(conn, str(args.get("dossier_id", "")))}
    except DossierNotFound:
        return set()


def public_id(conn: sqlite3.Connection, dossier_id: int | None) -> str | None:
    """What a browser may be told about a row id it must not see."""
    return None if dossier_id is None else dossiers.public_id_of(conn, dossier_id)
