"""The read-only PaymentSummary admin: pages render for a superuser; no add, change or delete."""

import pytest
from django.contrib import admin

from payments.models import PaymentSummary
from payments.services import payment_refund
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/payments/paymentsummary/"


@pytest.fixture
def superuser_client(client, admin_user):
    """Django's test client with a superuser's session."""
    client.force_login(admin_user)
    return client


@pytest.fixture
def payments_made(charge):
    """One processed, one declined and one refunded payment."""
    charge("pay-ok", customer="c-1")
    charge("pay-no", token="tok_decline", customer="c-2")
    charge("pay-back", customer="c-3")
    payment_refund(payment_id="pay-back")


def listed(response):
    assert response.status_code == 200
    return sorted(row.payment_id for row in response.context["cl"].result_list)


def test_the_changelist_lists_every_payment(superuser_client, payments_made):
    response = superuser_client.get(CHANGELIST)

    assert listed(response) == ["pay-back", "pay-no", "pay-ok"]
    page = response.content.decode()
    assert "card_declined" in page
    assert PaymentSummary.objects.get(payment_id="pay-ok").transaction_id in page


def test_the_changelist_filters_by_status(superuser_client, payments_made):
    response = superuser_client.get(CHANGELIST, {"status": "refunded"})

    assert listed(response) == ["pay-back"]


def test_the_changelist_searches_by_exact_transaction_id(superuser_client, payments_made):
    transaction_id = PaymentSummary.objects.get(payment_id="pay-ok").transaction_id

    response = superuser_client.get(CHANGELIST, {"q": transaction_id})

    assert listed(response) == ["pay-ok"]


def test_the_change_page_shows_the_payment_without_a_save_button(superuser_client, payments_made):
    response = superuser_client.get(f"{CHANGELIST}pay-no/change/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "pay-no" in page
    assert "card_declined" in page
    assert 'name="_save"' not in page


def test_the_change_page_refuses_a_post(superuser_client, payments_made):
    response = superuser_client.post(f"{CHANGELIST}pay-ok/change/", {"status": "refunded"})

    assert response.status_code == 403
    assert PaymentSummary.objects.get(payment_id="pay-ok").status == "processed"


def test_the_add_page_is_forbidden(superuser_client):
    response = superuser_client.get(f"{CHANGELIST}add/")

    assert response.status_code == 403


def test_the_changelist_offers_no_add_link_and_no_delete_action(superuser_client, payments_made):
    response = superuser_client.get(CHANGELIST)

    page = response.content.decode()
    assert f"{CHANGELIST}add/" not in page
    assert "delete_selected" not in page
    model_admin = admin.site._registry[PaymentSummary]
    assert "delete_selected" not in model_admin.get_actions(response.wsgi_request)


def test_the_delete_page_is_forbidden_and_keeps_the_row(superuser_client, payments_made):
    delete_url = f"{CHANGELIST}pay-ok/delete/"

    assert superuser_client.get(delete_url).status_code == 403
    assert superuser_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert PaymentSummary.objects.filter(payment_id="pay-ok").exists()


def test_the_bulk_delete_action_is_refused(superuser_client, payments_made):
    superuser_client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": ["pay-ok"], "post": "yes"}
    )

    assert PaymentSummary.objects.filter(payment_id="pay-ok").exists()


def test_payments_show_their_customer_by_username_and_link_their_events(superuser_client, charge):
    alice = UserFactory(username="alice")
    charge("pay-1", customer=str(alice.pk))
    charge("pay-2", customer="c-2")

    listing = superuser_client.get(CHANGELIST).content.decode()
    page = superuser_client.get(f"{CHANGELIST}pay-1/change/").content.decode()

    assert '<td class="field-customer">alice</td>' in listing
    assert '<td class="field-customer">c-2</td>' in listing
    assert f'<a href="/admin/auth/user/{alice.pk}/change/">alice</a>' in page
    events = "/admin/eventstore/event/?aggregate_type=payment&amp;aggregate_id=pay-1"
    assert f'<a href="{events}">events</a>' in page
    response = superuser_client.get(events.replace("&amp;", "&"))
    assert response.status_code == 200
    assert {row.aggregate_id for row in response.context["cl"].result_list} == {"pay-1"}
