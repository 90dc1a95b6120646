"""The recorders: one per kind of database, built once."""

from unittest import mock

from eventstore.recorders import PostgresRecorder, Recorder, SqliteRecorder, recorder


def test_each_kind_of_database_gets_its_own_recorder_built_once():
    sqlite, postgres = mock.Mock(vendor="sqlite"), mock.Mock(vendor="postgresql")

    assert type(recorder(sqlite)) is SqliteRecorder
    assert type(recorder(postgres)) is PostgresRecorder
    assert recorder(sqlite) is recorder(mock.Mock(vendor="sqlite"))
    assert type(recorder(mock.Mock(vendor="other"))) is Recorder
