"""``manage.py db_move`` refuses what it cannot move into, before touching anything. (The
move itself, into a real PostgreSQL server, is tests/integration/test_database_move.py.)"""

import pytest
from django.core.management import CommandError, call_command

from pools.models import Runtime


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["sqlite:////tmp/elsewhere.sqlite3", "mysql://u:p@h/db"])
def test_a_target_that_is_not_postgresql_is_refused(url: str) -> None:
    before = Runtime.objects.count()
    with pytest.raises(CommandError, match="must be a postgres:// URL"):
        call_command("db_move", "--to", url)
    assert Runtime.objects.count() == before
