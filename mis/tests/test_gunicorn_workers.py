"""mis.gunicorn_workers.KeepAliveThreadWorker under a real gunicorn: a kept-alive connection's
next request is answered by the thread that answered the last one when it comes within LINGER,
through the poller otherwise, and every request is answered either way (pipelined ones too)."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mis.gunicorn_workers import LINGER

ROOT = Path(__file__).resolve().parents[2]

APP = '''
import os
from mis.gunicorn_workers import KeepAliveThreadWorker

COUNT = os.environ["POLLED_FILE"]


class CountingWorker(KeepAliveThreadWorker):
    """Counts the requests of kept-alive connections that went through the poller."""

    polled = 0

    def on_client_socket_readable(self, conn, client):
        CountingWorker.polled += 1
        with open(COUNT + ".new", "w") as out:  # replaced whole: never read half written
            out.write(str(CountingWorker.polled))
        os.replace(COUNT + ".new", COUNT)
        super().on_client_socket_readable(conn, client)


def app(environ, start_response):
    body = environ["PATH_INFO"].encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(params=[4, 1], ids=["4 threads", "1 thread"])
def server(request, tmp_path):
    (tmp_path / "lingering_app.py").write_text(APP)
    polled = tmp_path / "polled"
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "lingering_app:app",
            "--worker-class",
            "lingering_app.CountingWorker",
            "--workers",
            "1",
            "--threads",
            str(request.param),
            "--bind",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "POLLED_FILE": str(polled), "PATH": ""},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("gunicorn did not start")
            time.sleep(0.1)
    yield port, polled, request.param
    process.terminate()
    process.wait(timeout=30)


def _polled(path: Path) -> int:
    return int(path.read_text()) if path.exists() else 0


def _responses(connection: socket.socket, count: int) -> list[bytes]:
    """The bodies of ``count`` responses read from the connection."""
    buffer, bodies = b"", []
    while len(bodies) < count:
        chunk = connection.recv(65536)
        assert chunk, "the server closed the connection"
        buffer += chunk
        while b"\r\n\r\n" in buffer:
            head, rest = buffer.split(b"\r\n\r\n", 1)
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            if len(rest) < length:
                break
            assert head.startswith(b"HTTP/1.1 200")
            bodies.append(rest[:length])
            buffer = rest[length:]
    return bodies


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


def test_requests_in_quick_succession_skip_the_poller_only_with_a_thread_to_spare(server):
    port, polled, threads = server
    with socket.create_connection(("127.0.0.1", port)) as connection:
        for n in range(10):
            connection.sendall(_get(f"/quick/{n}"))
            assert _responses(connection, 1) == [f"/quick/{n}".encode()]
        # Read while the connection is open: closing it makes the socket readable to the
        # poller, which counts (and rewrites the file) once more.
        count = _polled(polled)
    if threads > 1:
        assert count <= 3  # most (a busy test machine may take longer than LINGER)
    else:
        assert count == 9  # one thread never lingers: a new connection could wait


def test_a_request_after_the_linger_goes_through_the_poller(server):
    port, polled, _threads = server
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(_get("/first"))
        assert _responses(connection, 1) == [b"/first"]
        time.sleep(LINGER * 20)
        connection.sendall(_get("/later"))
        assert _responses(connection, 1) == [b"/later"]
        assert _polled(polled) == 1


def test_pipelined_requests_are_all_answered(server):
    port, _polled_file, _threads = server
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(_get("/a") + _get("/b") + _get("/c"))
        assert _responses(connection, 3) == [b"/a", b"/b", b"/c"]
