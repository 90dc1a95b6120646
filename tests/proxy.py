"""A TCP forwarder that tests put between processes and a server (a broker), to cut the
connection and restore it at will.

    with TcpProxy(("127.0.0.1", 5672)) as proxy:   # listens on 127.0.0.1:proxy.port
        ...                                        # clients connect to proxy.port
        proxy.cut()                                # every connection closed, new ones refused
        proxy.restore()                            # connections accepted and forwarded again

While cut, a client that connects is accepted and closed at once (it reads end-of-file before
the server's first byte), as a broker that is restarting answers: clients see the failure at
once instead of waiting for a timeout.
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress

BUFFER = 65536


class TcpProxy:
    """Forwards every connection to HOST:proxy.port to `upstream`, each direction on a thread."""

    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self._listener = socket.create_server((host, 0))
        self.host = host
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = False
        self._closed = False
        self.accepted = 0  # connections forwarded
        self.refused = 0  # connections closed at once while cut
        self._acceptor = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        self._acceptor.start()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- control -------------------------------------------------------------------------------

    def cut(self) -> int:
        """Close every forwarded connection and refuse new ones until `restore`; how many
        connections were open."""
        with self._lock:
            self._cut = True
            sockets, self._open = self._open, set()
        for sock in sockets:
            _close(sock)
        return len(sockets) // 2

    def restore(self) -> None:
        """Forward new connections again."""
        with self._lock:
            self._cut = False

    @property
    def is_cut(self) -> bool:
        return self._cut

    def close(self) -> None:
        """Stop listening and close every connection."""
        with self._lock:
            self._closed = True
            sockets, self._open = self._open, set()
        _close(self._listener)
        for sock in sockets:
            _close(sock)
        self._acceptor.join(timeout=5)

    # --- forwarding ----------------------------------------------------------------------------

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                if self._closed:
                    _close(client)
                    return
                refuse = self._cut
            if refuse:
                self.refused += 1
                _close(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._cut or self._closed:  # cut while connecting
                    _close(client)
                    _close(server)
                    continue
                self._open.update((client, server))
                self.accepted += 1
            for source, target in ((client, server), (server, client)):
                threading.Thread(
                    target=self._pump, args=(source, target), name="proxy-pump", daemon=True
                ).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        """Copy bytes from `source` to `target` until either side closes; then close both."""
        try:
            while True:
                data = source.recv(BUFFER)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(source)
                self._open.discard(target)
            _close(source)
            _close(target)


def _close(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with suppress(OSError):
        sock.close()
