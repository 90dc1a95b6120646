from django.apps import AppConfig


class DemoConfig(AppConfig):
    """A new user's first five minutes: `seed_demo` and `demo`. Not a service: it drives every
    service through its public functions (services.py) and reads their read models, which no
    service may do to another."""

    name = "demo"
