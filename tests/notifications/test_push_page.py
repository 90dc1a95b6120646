"""The push page and its service worker: served to a signed-in customer, the worker at the
site root, the page pointing at the API it subscribes through."""

import json

import pytest

from notifications import webpush

pytestmark = pytest.mark.django_db


def test_the_push_page_asks_an_anonymous_visitor_to_sign_in(client):
    response = client.get("/push/")

    assert response.status_code == 302
    assert response["Location"].startswith("/api/auth/login/?next=/push/")


def test_the_push_page_names_the_worker_and_the_endpoints_it_uses(client, customer):
    client.force_login(customer)

    response = client.get("/push/")

    assert response.status_code == 200
    page = response.content.decode()
    config = json.loads(
        page.split('id="push-config" type="application/json">')[1].split("</script>")[0]
    )
    assert config["service_worker"] == "/service-worker.js"
    assert config["subscriptions"] == "/api/notifications/push-subscriptions/"
    public_key = client.get(config["public_key"]).json()["public_key"]
    assert public_key == webpush.public_key()
    assert config["csrf_token"]


def test_the_service_worker_is_served_as_javascript_at_the_root(client):
    response = client.get("/service-worker.js")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    script = response.content.decode()
    assert 'addEventListener("push"' in script
    assert "openWindow" in script
