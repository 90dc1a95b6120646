"""The event store over HTTP: the event log API (`views`, `serializers`, `filters`, `urls`),
the pages every list of the API uses (`pagination`), and the health check (`health`)."""
