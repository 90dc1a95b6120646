"""Notification: one message to a customer, recorded once and then delivered by email at least
once, rebuilt only from events."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from eventstore.api import Aggregate, applies, derived_event_id
from notifications import events

# How much of an error's text a NotificationDeliveryFailed keeps.
ERROR_MAX_LENGTH = 500


class NotificationError(Exception):
    """A command the notifications service refuses; nothing was written."""


class NotificationUndeliverable(NotificationError):
    """The notification can never be delivered as it stands: its customer has no account or no
    email address. Trying again cannot help, so delivery is parked at once."""


class EmailNotAccepted(Exception):
    """The email backend raised nothing but reports that it sent no message: try again."""


@dataclass(frozen=True)
class Delivery:
    """Where a notification's delivery stands. `failed` means parked: no automatic attempt is
    left; a failure that will be retried keeps `pending`. `attempts` counts the attempts the
    log records (each failure and the delivery)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    STATUSES = (PENDING, DELIVERED, FAILED)

    status: str = PENDING
    attempts: int = 0
    error: str = ""
    message_id: str = ""

    def after(self, event_type: str, payload: Mapping[str, Any]) -> Delivery:
        """The delivery after one of the notification's events (the aggregate and the read
        model both follow this one rule)."""
        if event_type == events.NOTIFICATION_SENT and payload.get("delivered_when_recorded"):
            return replace(self, status=self.DELIVERED)
        if event_type == events.NOTIFICATION_DELIVERED:
            return replace(
                self,
                status=self.DELIVERED,
                attempts=self.attempts + 1,
                error="",
                message_id=payload["message_id"],
            )
        if event_type == events.NOTIFICATION_DELIVERY_FAILED:
            return replace(
                self,
                status=self.FAILED if payload["parked"] else self.PENDING,
                attempts=self.attempts + 1,
                error=payload["error"],
            )
        return self


@dataclass(frozen=True)
class PushDelivery:
    """Where a notification's Web Push delivery stands: `none` until an attempt is recorded (or
    when the customer has no push subscription), `delivered` once a push service accepted it,
    `pending` after a failed attempt that will be retried, `failed` when parked. `pushed`
    counts the subscriptions it reached, `attempts` the failed attempts."""

    NONE = "none"
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    STATUSES = (NONE, PENDING, DELIVERED, FAILED)

    status: str = NONE
    attempts: int = 0
    pushed: int = 0
    error: str = ""

    def after(self, event_type: str, payload: Mapping[str, Any]) -> PushDelivery:
        """The push delivery after one of the notification's events (the aggregate and the read
        model both follow this one rule)."""
        if event_type == events.NOTIFICATION_PUSHED:
            return replace(self, status=self.DELIVERED, pushed=self.pushed + 1, error="")
        if event_type == events.NOTIFICATION_PUSH_FAILED:
            return replace(
                self,
                status=self.FAILED if payload["parked"] else self.PENDING,
                attempts=self.attempts + 1,
                error=payload["error"],
            )
        return self


class Notification(Aggregate):
    """A message on one channel to one customer, possibly about one order, and its delivery."""

    aggregate_type = events.NOTIFICATION
    # 2: the state gained subject, body and delivery; 3: push and pushed_to.
    snapshot_version = 3

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.sent = False
        self.customer_id = ""
        self.order_id = ""
        self.type = ""
        self.channel = ""
        self.message = ""
        self.subject = ""
        self.body = ""
        self.delivery = Delivery()
        self.push = PushDelivery()
        self.pushed_to: list[str] = []  # the push subscriptions it reached

    @property
    def is_delivered(self) -> bool:
        """Whether the email was delivered (then it is never sent again)."""
        return self.delivery.status == Delivery.DELIVERED

    # --- commands ------------------------------------------------------------------------------

    def send(
        self,
        *,
        customer_id: str,
        order_id: str,
        type: str,
        channel: str,
        message: str,
        subject: str,
        body: str,
    ) -> None:
        """Record the message, to be delivered; a notification is recorded only once."""
        if self.sent:
            raise NotificationError(f"Notification {self.id!r} was sent already")
        if not customer_id or not type or not message:
            raise NotificationError("customer_id, type and message are required")
        if not subject or not body:
            raise NotificationError("subject and body are required")
        if "\n" in subject or "\r" in subject:
            raise NotificationError("the subject must be one line")
        self.record(
            events.NOTIFICATION_SENT,
            {
                "notification_id": self.id,
                "customer_id": customer_id,
                "order_id": order_id,
                "type": type,
                "channel": channel,
                "message": message,
                "subject": subject,
                "body": body,
            },
            # A second recording of the notification is refused by the store, whoever appends it.
            event_id=derived_event_id(events.NOTIFICATION, self.id, events.NOTIFICATION_SENT),
        )

    def delivered(self, *, message_id: str, attempt: int) -> None:
        """Record that the email went out; a notification is delivered once."""
        self._require_deliverable()
        self.record(
            events.NOTIFICATION_DELIVERED,
            {"notification_id": self.id, "message_id": message_id, "attempt": attempt},
            # A second copy of the delivery is refused by the store, whoever appends it.
            event_id=derived_event_id(events.NOTIFICATION, self.id, events.NOTIFICATION_DELIVERED),
        )

    def delivery_failed(self, *, attempt: int, error: str, parked: bool) -> None:
        """Record a failed attempt; `parked`: no automatic attempt follows."""
        self._require_deliverable()
        self.record(
            events.NOTIFICATION_DELIVERY_FAILED,
            {
                "notification_id": self.id,
                "attempt": attempt,
                "error": error[:ERROR_MAX_LENGTH],
                "parked": bool(parked),
            },
        )

    def pushed(self, *, subscription_id: str, attempt: int) -> None:
        """Record that a push service accepted the notification for one subscription; once per
        subscription."""
        if not self.sent:
            raise NotificationError(f"Notification {self.id!r} was never recorded")
        if subscription_id in self.pushed_to:
            raise NotificationError(f"Notification {self.id!r} was pushed to it already")
        self.record(
            events.NOTIFICATION_PUSHED,
            {"notification_id": self.id, "subscription_id": subscription_id, "attempt": attempt},
            event_id=derived_event_id(
                events.NOTIFICATION, self.id, f"{events.NOTIFICATION_PUSHED}:{subscription_id}"
            ),
        )

    def push_failed(self, *, attempt: int, error: str, parked: bool) -> None:
        """Record a failed push attempt; `parked`: no automatic attempt follows."""
        if not self.sent:
            raise NotificationError(f"Notification {self.id!r} was never recorded")
        self.record(
            events.NOTIFICATION_PUSH_FAILED,
            {
                "notification_id": self.id,
                "attempt": attempt,
                "error": error[:ERROR_MAX_LENGTH],
                "parked": bool(parked),
            },
        )

    def _require_deliverable(self) -> None:
        if not self.sent:
            raise NotificationError(f"Notification {self.id!r} was never recorded")
        if self.is_delivered:
            raise NotificationError(f"Notification {self.id!r} was delivered already")

    # --- appliers ------------------------------------------------------------------------------

    @applies(events.NOTIFICATION_SENT)
    def _sent(self, payload: dict[str, Any]) -> None:
        self.sent = True
        self.customer_id = payload["customer_id"]
        self.order_id = payload["order_id"]
        self.type = payload["type"]
        self.channel = payload["channel"]
        self.message = payload["message"]
        self.subject = payload["subject"]
        self.body = payload["body"]
        self.delivery = Delivery().after(events.NOTIFICATION_SENT, payload)

    @applies(events.NOTIFICATION_DELIVERED)
    def _delivered(self, payload: dict[str, Any]) -> None:
        self.delivery = self.delivery.after(events.NOTIFICATION_DELIVERED, payload)

    @applies(events.NOTIFICATION_DELIVERY_FAILED)
    def _delivery_failed(self, payload: dict[str, Any]) -> None:
        self.delivery = self.delivery.after(events.NOTIFICATION_DELIVERY_FAILED, payload)

    @applies(events.NOTIFICATION_PUSHED)
    def _pushed(self, payload: dict[str, Any]) -> None:
        self.push = self.push.after(events.NOTIFICATION_PUSHED, payload)
        self.pushed_to = [*self.pushed_to, payload["subscription_id"]]

    @applies(events.NOTIFICATION_PUSH_FAILED)
    def _push_failed(self, payload: dict[str, Any]) -> None:
        self.push = self.push.after(events.NOTIFICATION_PUSH_FAILED, payload)

    # --- snapshots -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        state = super().snapshot()
        state["delivery"] = asdict(self.delivery)
        state["push"] = asdict(self.push)
        return state

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(
            {
                **state,
                "delivery": Delivery(**state["delivery"]),
                "push": PushDelivery(**state["push"]),
            }
        )


class PushSubscription(Aggregate):
    """One browser's Web Push subscription of one customer: its stream id derives from the
    endpoint, so an endpoint is subscribed at most once at a time."""

    aggregate_type = events.PUSH_SUBSCRIPTION

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(aggregate_id)
        self.active = False
        self.customer_id = ""
        self.endpoint = ""
        self.p256dh = ""
        self.auth = ""

    def add(
        self, *, customer_id: str, endpoint: str, p256dh: str, auth: str, expiration_time: Any
    ) -> None:
        """Record the subscription; refused while it is active."""
        if self.active:
            raise NotificationError(f"Push subscription {self.id!r} is active already")
        self.record(
            events.PUSH_SUBSCRIPTION_ADDED,
            {
                "subscription_id": self.id,
                "customer_id": customer_id,
                "endpoint": endpoint,
                "p256dh": p256dh,
                "auth": auth,
                "expiration_time": expiration_time,
            },
        )

    def remove(self, *, reason: str) -> None:
        """End the subscription: nothing is pushed to it again."""
        if not self.active:
            raise NotificationError(f"Push subscription {self.id!r} is not active")
        self.record(
            events.PUSH_SUBSCRIPTION_REMOVED, {"subscription_id": self.id, "reason": reason}
        )

    @applies(events.PUSH_SUBSCRIPTION_ADDED)
    def _added(self, payload: dict[str, Any]) -> None:
        self.active = True
        self.customer_id = payload["customer_id"]
        self.endpoint = payload["endpoint"]
        self.p256dh = payload["p256dh"]
        self.auth = payload["auth"]

    @applies(events.PUSH_SUBSCRIPTION_REMOVED)
    def _removed(self, payload: dict[str, Any]) -> None:
        self.active = False
