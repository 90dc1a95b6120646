"""The SQLite backend the test suite runs on: Django's, with a flush that keeps triggers."""
