"""Progress of long steps: a bar on a terminal, plain lines in a CI log.

Thread-safe: executors report finished tasks from their own threads.
"""
from __future__ import annotations

import sys
import threading
import time


class Progress:
    """Count ``total`` steps of ``what``.

    On a terminal (``stream.isatty()``) one line is redrawn as a bar; otherwise a
    plain line is printed about every tenth of the work (and at the end), so CI logs
    show progress without a line per task.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> p = Progress(4, "measuring", stream=out)
    >>> for _ in range(4):
    ...     p.advance()
    >>> print(out.getvalue().splitlines()[-1])
    measuring: 4/4
    """

    WIDTH = 30

    def __init__(self, total: int, what: str, stream=None, tty: bool | None = None):
        self.total, self.what = max(int(total), 0), what
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.done = 0
        self._lock = threading.Lock()
        self._t0 = time.perf_counter()
        self._last_plain = -1

    def advance(self, n: int = 1, note: str = "") -> None:
        with self._lock:
            self.done = min(self.done + n, self.total)
            self._show(note)

    def _show(self, note: str) -> None:
        k, n = self.done, self.total
        if self.tty:
            filled = int(self.WIDTH * k / n) if n else self.WIDTH
            bar = "#" * filled + "." * (self.WIDTH - filled)
            end = "\n" if k >= n else ""
            self.stream.write(f"\r{self.what} [{bar}] {k}/{n} "
                              f"{time.perf_counter() - self._t0:5.1f} s {note}"[:120] + end)
        else:
            step = max(1, n // 10)
            if k < n and k - self._last_plain < step and not note:
                return
            self.stream.write(f"{self.what}: {k}/{n}{' ' + note if note else ''}\n")
            self._last_plain = k
        self.stream.flush()
