"""The read-only admin of the event store: the log, snapshots, checkpoints and streams."""

import json
import uuid

import pytest
from django.contrib import admin
from django.utils.html import escape

from eventstore.follower.subscriptions import Subscriber, catch_up
from eventstore.models import Checkpoint, Event, Snapshot, Stream
from eventstore.store import event_store
from tests.factories import NewEventFactory, StreamAppendFactory, append_event

EVENT_CHANGELIST = "/admin/eventstore/event/"


@pytest.fixture
def superuser_client(client, admin_user):
    """Django's test client with a superuser's session."""
    client.force_login(admin_user)
    return client


def listed_positions(response):
    """Positions of the events a changelist response shows."""
    assert response.status_code == 200
    return [event.position for event in response.context["cl"].result_list]


# --- Event changelist ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_event_changelist_lists_events_newest_first(superuser_client):
    events = [append_event(event_type=f"Step{n}") for n in range(3)]

    response = superuser_client.get(EVENT_CHANGELIST)

    assert listed_positions(response) == [event.position for event in reversed(events)]
    page = response.content.decode()
    for event in events:
        assert event.aggregate_id in page
        assert event.event_type in page


@pytest.mark.django_db
def test_event_changelist_shows_the_correlation_id_column(superuser_client):
    order_id = str(uuid.uuid4())
    append_event(metadata={"correlation_id": order_id})

    response = superuser_client.get(EVENT_CHANGELIST)

    assert order_id in response.content.decode()


@pytest.mark.django_db
def test_event_changelist_is_closed_to_staff_without_permissions(client, staff_user):
    append_event()
    client.force_login(staff_user)

    response = client.get(EVENT_CHANGELIST)

    assert response.status_code == 403


@pytest.mark.django_db
def test_event_changelist_redirects_anonymous_visitors_to_login(client):
    response = client.get(EVENT_CHANGELIST)

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


@pytest.mark.django_db
def test_event_changelist_filters_by_aggregate_type(superuser_client):
    order = append_event(aggregate_type="order")
    append_event(aggregate_type="payment")

    response = superuser_client.get(EVENT_CHANGELIST, {"aggregate_type": "order"})

    assert listed_positions(response) == [order.position]


@pytest.mark.django_db
def test_event_changelist_filters_by_event_type(superuser_client):
    placed = append_event(event_type="OrderPlaced")
    append_event(event_type="OrderCancelled")

    response = superuser_client.get(EVENT_CHANGELIST, {"event_type": "OrderPlaced"})

    assert listed_positions(response) == [placed.position]


@pytest.mark.django_db
def test_event_changelist_offers_the_stored_values_as_filter_choices(superuser_client):
    append_event(aggregate_type="order", event_type="OrderPlaced")
    append_event(aggregate_type="payment", event_type="PaymentCharged")

    response = superuser_client.get(EVENT_CHANGELIST)

    page = response.content.decode()
    for parameter, value in (
        ("aggregate_type", "order"),
        ("aggregate_type", "payment"),
        ("event_type", "OrderPlaced"),
        ("event_type", "PaymentCharged"),
    ):
        assert f'href="?{parameter}={value}"' in page


# --- Event search --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_event_search_finds_a_stream_by_exact_aggregate_id(superuser_client):
    stream = StreamAppendFactory(events=[NewEventFactory(), NewEventFactory()])
    events = event_store.append(stream)
    other = StreamAppendFactory(aggregate_id=f"{stream.aggregate_id}x")
    event_store.append(other)

    response = superuser_client.get(EVENT_CHANGELIST, {"q": stream.aggregate_id})

    # Exact match: a longer id that merely starts with the search term is not listed.
    assert sorted(listed_positions(response)) == [event.position for event in events]


@pytest.mark.django_db
def test_event_search_finds_an_event_by_event_id(superuser_client):
    wanted = append_event()
    append_event()

    response = superuser_client.get(EVENT_CHANGELIST, {"q": str(wanted.event_id)})

    assert listed_positions(response) == [wanted.position]


@pytest.mark.django_db
def test_event_search_finds_events_by_correlation_id(superuser_client):
    order_id = str(uuid.uuid4())
    correlated = [
        append_event(aggregate_type="order", metadata={"correlation_id": order_id}),
        append_event(aggregate_type="payment", metadata={"correlation_id": order_id}),
    ]
    append_event(metadata={"correlation_id": str(uuid.uuid4())})

    response = superuser_client.get(EVENT_CHANGELIST, {"q": order_id})

    assert sorted(listed_positions(response)) == [event.position for event in correlated]


@pytest.mark.django_db
@pytest.mark.parametrize("term", ["not-a-uuid", "order 42", "'quoted'", "%_"])
def test_event_search_for_a_term_that_is_not_a_uuid_answers_200(superuser_client, term):
    append_event()

    response = superuser_client.get(EVENT_CHANGELIST, {"q": term})

    assert listed_positions(response) == []


# --- Event change page, add and delete ----------------------------------------------------------


@pytest.mark.django_db
def test_event_change_page_shows_the_pretty_printed_payload_and_metadata(superuser_client):
    payload = {"items": [{"product_id": "p-1", "quantity": 2}], "total": "12.50"}
    metadata = {"correlation_id": str(uuid.uuid4()), "causation_id": "cmd-1"}
    event = append_event(payload=payload, metadata=metadata)

    response = superuser_client.get(f"{EVENT_CHANGELIST}{event.position}/change/")

    assert response.status_code == 200
    page = response.content.decode()
    for value in (payload, metadata):
        pretty = json.dumps(value, indent=2, sort_keys=True)
        assert "\n  " in pretty
        assert f"<pre>{escape(pretty)}</pre>" in page
    assert str(event.event_id) in page


@pytest.mark.django_db
def test_event_change_page_links_its_streams_and_its_correlated_events(superuser_client):
    first, second = event_store.append(
        StreamAppendFactory(
            aggregate_id="t-1",
            events=[
                NewEventFactory(metadata={"correlation_id": "o-1"}),
                NewEventFactory(metadata={"correlation_id": "o-2"}),
            ],
        )
    )
    other = append_event(metadata={"correlation_id": "o-1"})

    page = superuser_client.get(f"{EVENT_CHANGELIST}{first.position}/change/").content.decode()

    stream = f"{EVENT_CHANGELIST}?aggregate_type=thing&aggregate_id=t-1"
    correlated = f"{EVENT_CHANGELIST}?correlation_id=o-1"
    assert f'<a href="{escape(stream)}">stream</a>' in page
    assert f'<a href="{correlated}">correlated</a>' in page
    assert sorted(listed_positions(superuser_client.get(stream))) == [
        first.position,
        second.position,
    ]
    assert sorted(listed_positions(superuser_client.get(correlated))) == [
        first.position,
        other.position,
    ]


@pytest.mark.django_db
def test_event_change_page_offers_no_save_button(superuser_client):
    event = append_event()

    response = superuser_client.get(f"{EVENT_CHANGELIST}{event.position}/change/")

    assert response.status_code == 200
    assert 'name="_save"' not in response.content.decode()


@pytest.mark.django_db
def test_event_change_page_refuses_a_post(superuser_client):
    event = append_event(event_type="OrderPlaced")

    response = superuser_client.post(
        f"{EVENT_CHANGELIST}{event.position}/change/", {"event_type": "Rewritten"}
    )

    assert response.status_code == 403
    assert Event.objects.get(position=event.position).event_type == "OrderPlaced"


@pytest.mark.django_db
def test_event_add_page_is_forbidden(superuser_client):
    response = superuser_client.get(f"{EVENT_CHANGELIST}add/")

    assert response.status_code == 403


@pytest.mark.django_db
def test_event_changelist_offers_no_add_link_and_no_delete_action(superuser_client):
    append_event()

    response = superuser_client.get(EVENT_CHANGELIST)

    page = response.content.decode()
    assert f"{EVENT_CHANGELIST}add/" not in page
    assert "delete_selected" not in page
    request = response.wsgi_request
    assert "delete_selected" not in admin.site._registry[Event].get_actions(request)


@pytest.mark.django_db
def test_event_delete_page_is_forbidden_and_keeps_the_event(superuser_client):
    event = append_event()
    delete_url = f"{EVENT_CHANGELIST}{event.position}/delete/"

    assert superuser_client.get(delete_url).status_code == 403
    assert superuser_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert Event.objects.filter(position=event.position).exists()


@pytest.mark.django_db
def test_event_bulk_delete_action_is_refused(superuser_client):
    event = append_event()

    superuser_client.post(
        EVENT_CHANGELIST,
        {"action": "delete_selected", "_selected_action": [event.position], "post": "yes"},
    )

    assert Event.objects.filter(position=event.position).exists()


# --- Snapshot, Checkpoint and Stream -------------------------------------------------------------


@pytest.mark.django_db
def test_snapshot_changelist_lists_snapshots(superuser_client):
    snapshot = Snapshot.objects.create(
        aggregate_type="order", aggregate_id="order-snap-1", version=100, state={"status": "paid"}
    )

    response = superuser_client.get("/admin/eventstore/snapshot/")

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [snapshot]
    assert "order-snap-1" in response.content.decode()


@pytest.mark.django_db
def test_snapshot_change_page_shows_the_pretty_printed_state(superuser_client):
    state = {"status": "paid", "lines": [{"product_id": "p-1"}]}
    snapshot = Snapshot.objects.create(
        aggregate_type="order", aggregate_id="order-snap-2", version=100, state=state
    )

    response = superuser_client.get(f"/admin/eventstore/snapshot/{snapshot.pk}/change/")

    assert response.status_code == 200
    pretty = json.dumps(state, indent=2, sort_keys=True)
    assert f"<pre>{escape(pretty)}</pre>" in response.content.decode()


@pytest.mark.django_db
def test_checkpoint_changelist_lists_subscriber_checkpoints(superuser_client):
    class Noop(Subscriber):
        name = "tests.admin.noop"

        def handle(self, event):
            pass

    last = append_event()
    catch_up(Noop())

    response = superuser_client.get("/admin/eventstore/checkpoint/")

    assert response.status_code == 200
    [checkpoint] = response.context["cl"].result_list
    assert checkpoint == Checkpoint.objects.get(subscriber="tests.admin.noop")
    assert checkpoint.position == last.position
    assert "tests.admin.noop" in response.content.decode()


@pytest.mark.django_db
def test_stream_changelist_lists_the_streams_appended_to(superuser_client):
    first = append_event(aggregate_type="order")
    second = append_event(aggregate_type="payment")

    response = superuser_client.get("/admin/eventstore/stream/")

    assert response.status_code == 200
    listed = {(row.aggregate_type, row.aggregate_id) for row in response.context["cl"].result_list}
    assert listed == {("order", first.aggregate_id), ("payment", second.aggregate_id)}


@pytest.mark.django_db
def test_stream_search_finds_a_stream_by_exact_aggregate_id(superuser_client):
    wanted = append_event()
    append_event()

    response = superuser_client.get("/admin/eventstore/stream/", {"q": wanted.aggregate_id})

    assert response.status_code == 200
    assert [row.aggregate_id for row in response.context["cl"].result_list] == [wanted.aggregate_id]
    assert Stream.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("model", ["snapshot", "checkpoint", "stream"])
def test_read_model_add_pages_are_forbidden(superuser_client, model):
    response = superuser_client.get(f"/admin/eventstore/{model}/add/")

    assert response.status_code == 403
