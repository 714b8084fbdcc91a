"""A device database on a temporary data directory for the records tests (see
tests/helpers/device_db.py). A module that needs other settings overrides `config`;
`conn` follows it."""

from tests.helpers import device_db

config = device_db.config  # fixture
conn = device_db.conn  # fixture
