"""Every task process checks the schema; it reads the newest revision from the version files, not Alembic."""

from persistence.migrate import head, packaged_head


def test_the_cheap_head_is_alembics_head():
    assert packaged_head() == head()
