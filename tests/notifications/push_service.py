"""A local Web Push service for the tests: it plays a browser vendor's push service on loopback
(plain http, allowed by NOTIFICATIONS_PUSH_ALLOW_LOOPBACK in the test settings), checks each
push's VAPID signature (RFC 8292) and decrypts its aes128gcm body (RFC 8291) with the key of the
browser it stands for, and answers as the test tells it."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Browser:
    """A browser's side of one subscription: its key pair and auth secret."""

    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth_secret: bytes = field(default_factory=lambda: os.urandom(16))

    @property
    def p256dh(self) -> str:
        return b64url(
            self.private_key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )

    @property
    def auth(self) -> str:
        return b64url(self.auth_secret)


@dataclass
class Push:
    """One push as the service received it, with what its checks found."""

    path: str
    headers: dict[str, str]  # names in lower case
    claims: dict[str, Any] | None = None
    vapid_key: str = ""
    problems: list[str] = field(default_factory=list)
    payload: Any = None


@dataclass
class Answer:
    status: int = 201
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class PushService:
    """The server: `answers` are used in order (then 201); `pushes` holds what arrived."""

    def __init__(self) -> None:
        self.browsers: dict[str, Browser] = {}
        self.answers: deque[Answer] = deque()
        self.pushes: list[Push] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                service.pushes.append(
                    service.receive(
                        self.path,
                        {name.lower(): value for name, value in self.headers.items()},
                        body,
                    )
                )
                answer = service.answers.popleft() if service.answers else Answer()
                if answer.delay:
                    time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the client gave up waiting

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def subscribe(self, name: str) -> tuple[str, Browser]:
        """A new browser subscription: its endpoint on this service, and the browser."""
        browser = Browser()
        self.browsers[f"/push/{name}"] = browser
        return f"{self.origin}/push/{name}", browser

    def receive(self, path: str, headers: dict[str, str], body: bytes) -> Push:
        push = Push(path=path, headers=headers)
        self._check_vapid(push)
        browser = self.browsers.get(path)
        if browser is None:
            push.problems.append("unknown subscription")
            return push
        if headers.get("content-encoding") != "aes128gcm":
            push.problems.append(f"content-encoding {headers.get('content-encoding')!r}")
        try:
            plain = http_ece.decrypt(
                body,
                private_key=browser.private_key,
                auth_secret=browser.auth_secret,
                version="aes128gcm",
            )
            push.payload = json.loads(plain)
        except Exception as error:
            push.problems.append(f"cannot decrypt: {error!r}")
        return push

    def _check_vapid(self, push: Push) -> None:
        """RFC 8292: `Authorization: vapid t=<ES256 JWT>, k=<public key>`."""
        scheme, _, params = push.headers.get("authorization", "").partition(" ")
        fields = dict(part.strip().split("=", 1) for part in params.split(",") if "=" in part)
        if scheme != "vapid" or "t" not in fields or "k" not in fields:
            push.problems.append("no vapid Authorization")
            return
        push.vapid_key = fields["k"]
        header, claims, signature = fields["t"].split(".")
        if json.loads(unb64url(header)).get("alg") != "ES256":
            push.problems.append("JWT alg is not ES256")
        raw = unb64url(signature)
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(fields["k"]))
        try:
            key.verify(der, f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            push.problems.append("bad JWT signature")
        push.claims = json.loads(unb64url(claims))
        if push.claims.get("aud") != self.origin:
            push.problems.append(f"aud {push.claims.get('aud')!r}")
        if not time.time() < push.claims.get("exp", 0) <= time.time() + 24 * 3600:
            push.problems.append("exp not within 24 hours")

    def __enter__(self) -> PushService:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
