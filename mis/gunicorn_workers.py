"""Gunicorn's threaded (gthread) worker, answering a kept-alive connection's next request in the
thread that answered its previous one.

gthread hands every request of a kept-alive connection from its poller (the worker's main
thread) to the thread pool: the main thread wakes, moves the socket out of its poller and
submits it, and a pool thread wakes in turn. A viewer asks for frames back to back (the next
one on a connection as soon as the last arrived), and on a busy machine that second wake-up is
a good part of a small frame's time (bench/README.md, "frames"). So a thread that has just
answered waits ``LINGER`` seconds on the same connection and answers its next request itself;
only when none comes in that time does the connection go back to the poller as before.

A thread lingers only while another thread of the pool is free, so a new connection never waits
for a lingering one (but for the race where the free threads all take work during a linger: a
request then waits ``LINGER`` at most). With ``--threads 1`` it never lingers.

Run it with ``--worker-class mis.gunicorn_workers.KeepAliveThreadWorker`` (Dockerfile,
docker-compose.yml, ``make run``).
"""

from __future__ import annotations

import select
import threading

from gunicorn.workers.gthread import ThreadWorker

LINGER = 0.005  # seconds; a viewer's next request on a connection comes within a few ms


class KeepAliveThreadWorker(ThreadWorker):
    def init_process(self):
        self._busy = 0
        self._busy_lock = threading.Lock()
        super().init_process()

    def handle(self, conn):
        with self._busy_lock:
            self._busy += 1
        try:
            keep = super().handle(conn)
            while keep is True and self.alive and self._busy < self.cfg.threads:
                # Bytes of the next request already read (a pipelining client) do not make the
                # socket readable again.
                if not conn.parser.unreader.buf.getvalue() and not _readable(conn.sock, LINGER):
                    break
                keep = super().handle(conn)
            return keep
        finally:
            with self._busy_lock:
                self._busy -= 1


def _readable(sock, timeout: float) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(timeout * 1000))
