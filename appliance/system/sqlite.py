"""The two SQLite habits every database here shares: WAL, and BEGIN IMMEDIATE.

The device's store and the central receiver's store keep their own schemas (the
central office must not depend on the device's), but how a connection is switched to
WAL and how a transaction is opened is the same joint, written once here.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager


def use_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Switch a new database to WAL (the mode then persists in the file).

    The switch needs a moment of exclusive access and SQLite does not wait on the
    busy handler for it, so two processes creating the database at once retry here.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception: a writer takes the
    lock up front instead of failing half-way when it upgrades a read lock."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        try:
            conn.execute("COMMIT")
        except BaseException:
            # A COMMIT that failed (a full disk) leaves the transaction open: the next
            # BEGIN on this connection would fail too.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
