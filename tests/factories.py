"""factory-boy factories shared by every test suite."""

import uuid

import factory
from django.contrib.auth import get_user_model

from eventstore.records import RecordedEvent
from eventstore.store import NewEvent, StreamAppend, event_store


class UserFactory(factory.django.DjangoModelFactory):
    """A customer: an ordinary, non-staff user."""

    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"customer{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("correct horse battery staple")
    is_staff = False


class StaffUserFactory(UserFactory):
    """A staff user, allowed the command endpoints and the event log."""

    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True


class NewEventFactory(factory.Factory):
    """An event ready to append."""

    class Meta:
        model = NewEvent

    event_type = "ThingHappened"
    payload = factory.Sequence(lambda n: {"n": n})
    metadata = factory.Dict({})
    event_id = factory.LazyFunction(uuid.uuid4)


class StreamAppendFactory(factory.Factory):
    """One stream's part of an append, with one new event by default."""

    class Meta:
        model = StreamAppend

    aggregate_type = "thing"
    aggregate_id = factory.LazyFunction(lambda: uuid.uuid4().hex[:12])
    events = factory.LazyFunction(lambda: [NewEventFactory()])
    expected_version = 0


def append_event(aggregate_type="thing", aggregate_id=None, **event_fields) -> RecordedEvent:
    """Append one event through the store (to a new stream unless `aggregate_id` is given)."""
    stream = StreamAppendFactory(
        aggregate_type=aggregate_type,
        events=[NewEventFactory(**event_fields)],
        **({"aggregate_id": aggregate_id} if aggregate_id else {}),
    )
    return event_store.append(stream)[0]
