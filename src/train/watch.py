"""The hosts of a multi-host job watch each other, so that no failure turns into a hang.

ps-lite waits forever for a peer that never comes or has died. Beside it, each host's launcher
keeps one TCP connection to the first host's launcher (the watch port, the scheduler's + 1) and
sends a line every few seconds: `hello HOST`, `beat`, `done`, `stop` or `fail SENTENCE`; the
first host answers with `beat`, `stop` and `fail` lines. A peer that never connects, whose
connection closes before it is done, or that stays silent for `peer_timeout` seconds is lost:
the first host fails the job naming it, and tells every other host to stop.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

CONNECT_RETRY = 0.5  # seconds between connection attempts to the first host


@dataclass
class Peer:
    """What one host has said, and when it last said anything."""

    host: str
    last_seen: float = field(default_factory=time.monotonic)
    state: str = "running"  # running | done | stop | failed | lost
    message: str = ""  # the sentence of a `fail` line, or why it was lost
    conn: socket.socket | None = None


def beat_interval(peer_timeout: float) -> float:
    """How often to send a beat: several beats fit into one timeout."""
    return max(0.2, min(5.0, peer_timeout / 5))


def send(conn: socket.socket | None, line: str) -> None:
    """Send one line; a closed connection is noticed by the reader, not here."""
    if conn is None:
        return
    try:
        conn.sendall((line.replace("\n", " ") + "\n").encode())
    except OSError:
        pass


def read_lines(conn: socket.socket, on_line, on_close) -> None:
    """Call on_line(text) for every line until the connection closes, then on_close()."""
    buffer = b""
    try:
        while chunk := conn.recv(4096):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                on_line(line.decode(errors="replace"))
    except OSError:
        pass
    on_close()


class Leader:
    """The first host's side: accepts the other hosts, tracks them, broadcasts stop and fail."""

    def __init__(self, followers: list[str], port: int, peer_timeout: float) -> None:
        self.peers = {host: Peer(host) for host in followers}
        self.peer_timeout = peer_timeout
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.server = socket.create_server(("", port), reuse_port=False)
        self.server.settimeout(1.0)
        self.closed = False
        threading.Thread(target=self._accept, daemon=True, name="watch-accept").start()
        threading.Thread(target=self._beat, daemon=True, name="watch-beat").start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                conn, _ = self.server.accept()
            except (TimeoutError, OSError):
                continue
            conn.settimeout(None)  # silence is judged by peer_timeout, not by the socket
            threading.Thread(target=self._serve, args=(conn,), daemon=True, name="watch-peer").start()

    def _serve(self, conn: socket.socket) -> None:
        state: dict[str, Peer] = {}
        read_lines(conn, lambda line: self._on_line(conn, state, line), lambda: self._on_close(state))

    def _on_line(self, conn: socket.socket, state: dict[str, Peer], line: str) -> None:
        word, _, rest = line.partition(" ")
        with self.lock:
            if word == "hello" and rest in self.peers:
                state["peer"] = self.peers[rest]
                state["peer"].conn = conn
                log.info("event=host_connected host=%s", rest)
            peer = state.get("peer")
            if peer is None:
                return
            peer.last_seen = time.monotonic()
            if word == "stop" and peer.state == "running":
                peer.state = "stop"
            elif word == "done" and peer.state in ("running", "stop"):
                peer.state = "done"
            elif word == "fail":
                peer.state, peer.message = "failed", rest

    def _on_close(self, state: dict[str, Peer]) -> None:
        with self.lock:
            peer = state.get("peer")
            if peer is not None and peer.state in ("running", "stop"):
                peer.state, peer.message = "lost", "its connection closed (the instance or its launcher ended)"

    def _beat(self) -> None:
        while not self.closed:
            self.broadcast("beat")
            time.sleep(beat_interval(self.peer_timeout))

    def broadcast(self, line: str) -> None:
        """Send `line` to every connected host."""
        with self.lock:
            conns = [peer.conn for peer in self.peers.values()]
        for conn in conns:
            send(conn, line)

    def problem(self) -> str | None:
        """A sentence naming the first host that failed, never connected or went silent; else None."""
        now = time.monotonic()
        with self.lock:
            for peer in self.peers.values():
                if peer.state == "failed":
                    return f"host {peer.host} failed: {peer.message}"
                if peer.state == "lost":
                    return f"host {peer.host} stopped answering: {peer.message}."
                if peer.conn is None and now - self.started > self.peer_timeout:
                    return (f"host {peer.host} never connected within peer_timeout={self.peer_timeout:g} s "
                            "(did its instance start? is the port open between the instances?).")
                if peer.conn is not None and peer.state != "done" and now - peer.last_seen > self.peer_timeout:
                    return f"host {peer.host} stopped answering: nothing heard for peer_timeout={self.peer_timeout:g} s."
        return None

    def stop_requested(self) -> bool:
        with self.lock:
            return any(peer.state == "stop" for peer in self.peers.values())

    def all_done(self) -> bool:
        with self.lock:
            return all(peer.state == "done" for peer in self.peers.values())

    def close(self) -> None:
        self.closed = True
        self.server.close()
        with self.lock:
            for peer in self.peers.values():
                if peer.conn is not None:
                    peer.conn.close()


class Follower:
    """Any other host's side: connects to the first host, beats, hears stop and fail."""

    def __init__(self, host: str, leader: str, address: tuple[str, int], peer_timeout: float) -> None:
        self.host, self.leader, self.peer_timeout = host, leader, peer_timeout
        self.conn = self._connect(address)
        self.last_seen = time.monotonic()
        self.state, self.message = "running", ""
        self.closed = False
        send(self.conn, f"hello {host}")
        threading.Thread(target=read_lines, args=(self.conn, self._on_line, self._on_close), daemon=True,
                         name="watch-read").start()
        threading.Thread(target=self._beat, daemon=True, name="watch-beat").start()

    def _connect(self, address: tuple[str, int]) -> socket.socket:
        deadline = time.monotonic() + self.peer_timeout
        while True:
            try:
                conn = socket.create_connection(address, timeout=CONNECT_RETRY * 4)
                conn.settimeout(None)  # silence is judged by peer_timeout, not by the socket
                return conn
            except OSError as err:
                if time.monotonic() > deadline:
                    from gtsrb.common.failure import StepError

                    raise StepError(f"the first host {self.leader} never answered at {address[0]}:{address[1]} within "
                                    f"peer_timeout={self.peer_timeout:g} s ({err.strerror or err}).") from err
                time.sleep(CONNECT_RETRY)

    def _on_line(self, line: str) -> None:
        self.last_seen = time.monotonic()
        word, _, rest = line.partition(" ")
        if word == "stop" and self.state == "running":
            self.state = "stop"
        elif word == "fail":
            self.state, self.message = "failed", rest

    def _on_close(self) -> None:
        if not self.closed and self.state in ("running", "stop"):
            self.state, self.message = "lost", "its connection closed (the instance or its launcher ended)"

    def _beat(self) -> None:
        while not self.closed:
            send(self.conn, "beat")
            time.sleep(beat_interval(self.peer_timeout))

    def tell(self, line: str) -> None:
        send(self.conn, line)

    def problem(self) -> str | None:
        """A sentence naming the first host when it failed or went silent; else None."""
        if self.state == "failed":
            return f"the job failed on host {self.leader}: {self.message}"
        if self.state == "lost":
            return f"the first host {self.leader} stopped answering: {self.message}."
        if time.monotonic() - self.last_seen > self.peer_timeout:
            return f"the first host {self.leader} stopped answering: nothing heard for peer_timeout={self.peer_timeout:g} s."
        return None

    def stop_requested(self) -> bool:
        return self.state == "stop"

    def close(self) -> None:
        self.closed = True
        try:
            self.conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()
