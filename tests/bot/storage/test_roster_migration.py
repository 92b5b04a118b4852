"""Migration 0010 (rosters): the planned_shifts table comes and goes, on SQLite and PostgreSQL,
and holds what handoff.roster writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, select

from bot.rules import QueueName
from bot.storage import db
from bot.storage.models import PlannedShift, Role, User


@pytest.mark.empty_database
def test_planned_shifts_up_down_up(any_database_url: str) -> None:
    db.upgrade(any_database_url, "0010")
    engine = db.make_engine(any_database_url)
    inspector = inspect(engine)
    assert "planned_shifts" in inspector.get_table_names()
    columns = {c["name"] for c in inspector.get_columns("planned_shifts")}
    assert columns == {"id", "user_id", "queue", "starts_at", "ends_at", "series_id", "created_by", "created_at"}
    indexes = {i["name"] for i in inspector.get_indexes("planned_shifts")}
    assert {"ix_planned_shifts_user_id", "ix_planned_shifts_series_id", "ix_planned_shifts_queue_starts_at"} <= indexes

    factory = db.session_factory(engine)
    start = datetime(2027, 1, 4, 18, tzinfo=UTC)
    with db.transaction(factory) as session:
        user = User(username="sanne", display_name="Sanne", password_hash="x", role=Role.volunteer)
        session.add(user)
        session.flush()
        session.add(PlannedShift(user_id=user.id, queue=QueueName.volunteer, starts_at=start,
                                 ends_at=start + timedelta(hours=4), created_by=user.id))
    with factory() as session:
        stored = session.scalars(select(PlannedShift)).one()
        assert stored.queue is QueueName.volunteer and stored.series_id is None
    engine.dispose()

    db.downgrade(any_database_url, "0009")
    engine = db.make_engine(any_database_url)
    tables = set(inspect(engine).get_table_names())
    assert "planned_shifts" not in tables and "users" in tables
    engine.dispose()

    db.upgrade(any_database_url)
    engine = db.make_engine(any_database_url)
    assert "planned_shifts" in inspect(engine).get_table_names()
    engine.dispose()
