"""The follower side: what runs after a commit. Checkpointed subscribers (`subscriptions`),
calls to the outside world (`effects`), how a commit wakes them (`dispatch`, and the Celery
`tasks` of celery mode), and admission of new work while the backlog is long (`admission`)."""
