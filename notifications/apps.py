from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """The notifications service app."""

    name = "notifications"
