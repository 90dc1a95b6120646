// Shows each push notification (notifications' JSON: title, body, order_id, url) and opens the
// order when it is clicked. Served at the site root so its scope covers every page.
"use strict";

self.addEventListener("push", (event) => {
  const data = event.data ? event.data.json() : {};
  event.waitUntil(
    self.registration.showNotification(data.title || "Order update", {
      body: data.body || "",
      tag: data.notification_id,
      data: {url: data.url || "/"},
    }),
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(self.clients.openWindow(event.notification.data.url));
});
