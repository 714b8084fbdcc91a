"""The central SQLite database keeps its WAL small: what was written goes into the
database file every central.db.WAL_BYTES, and the WAL file is cut back to that.

Before, with 32 KiB pages and SQLite's default of a checkpoint every 1000 pages, up to
32 MB lived in the WAL alone (every version of every page written). On a disk that
filled, room an operator freed went to the WAL's next writes and the disk was full
again: red team 4's full-disk test (a 6 MB disk) saw the receiver stay on a full disk
for good once, in a loaded CI run. Real SQLite through the receiver's own connection.
"""

from __future__ import annotations

import os

from appliance.central import db as central_db


def test_the_wal_stays_within_its_bound_and_the_data_goes_to_the_database(tmp_path):
    path = tmp_path / "central.sqlite3"
    conn = central_db.connect_sqlite(path)
    try:
        conn.execute("CREATE TABLE scratch(b BLOB)")
        written = 0
        largest_wal = 0
        for _ in range(200):  # 12 MB, one group commit after the other
            with central_db.transaction(conn):
                conn.execute("INSERT INTO scratch(b) VALUES (?)", (os.urandom(60_000),))
                conn.add_to_counter("records_stored", 1)  # a hot page, rewritten each time
            written += 60_000
            wal = tmp_path / "central.sqlite3-wal"
            largest_wal = max(largest_wal, wal.stat().st_size if wal.exists() else 0)
        assert largest_wal <= 4 * central_db.WAL_BYTES, largest_wal
        assert path.stat().st_size > written / 2  # the data is in the database file
        assert conn.counter("records_stored") == 200
    finally:
        conn.close()
