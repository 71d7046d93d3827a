"""One progress display per long job, readable on a terminal and in a log file.

On a terminal it is a tqdm bar (count, rate, ETA) redrawn in place. When the stream is not a
terminal (a log file, a CI job, a pipe), redraws would leave hundreds of carriage-return
fragments, so it prints a plain line at every tenth of the work instead (and at most one a
second), each with the count, the rate and the ETA. Either way the caller ends with one summary
line (`Progress.close(summary)`).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or a stream-like object without isatty
        return False


def format_rate(rate: float) -> str:
    """2.5, 266, 12,000: three significant digits without scientific notation."""
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.3g}"


def format_seconds(seconds: float) -> str:
    """12 s, 3 min 05 s, 1 h 02 min: short enough for a progress line."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """A progress bar over `total` units of work.

    Args:
      total: units of work expected (None when unknown: plain lines then come every
        `every_seconds`).
      desc: what is being done, e.g. "phantom_slices/sagittal_64".
      unit: the unit's name, e.g. "case" or "slice".
      stream: where to write (default stderr).
      terminal: force bar (True) or plain lines (False); None detects the stream.
      steps: plain lines per job (10: one line per 10 %).
      every_seconds: with an unknown total, the seconds between plain lines.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str = "it",
        *,
        stream: TextIO | None = None,
        terminal: bool | None = None,
        steps: int = 10,
        every_seconds: float = 30.0,
    ):
        self.total = None if total is None else int(total)
        self.desc = desc
        self.unit = unit
        self.count = 0
        self.start = time.perf_counter()
        self._stream = stream if stream is not None else sys.stderr
        self._steps = max(1, int(steps))
        self._every = float(every_seconds)
        self._next_step = 1
        self._last_line = self.start
        self._closed = False
        self._bar = None
        if terminal if terminal is not None else _is_terminal(self._stream):
            from tqdm import tqdm

            self._bar = tqdm(
                total=self.total,
                desc=desc,
                unit=unit,
                file=self._stream,
                dynamic_ncols=True,
                leave=False,
            )

    @property
    def elapsed(self) -> float:
        """Seconds since the job started."""
        return time.perf_counter() - self.start

    def update(self, n: int = 1) -> None:
        """Counts `n` more units done."""
        self.count += int(n)
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.perf_counter()
        if self.total:
            step = min(self._steps, self.count * self._steps // self.total)
            if step >= self._next_step and (now - self._last_line >= 1.0 or step == self._steps):
                self._next_step = step + 1
                self._line(now)
        elif now - self._last_line >= self._every:
            self._line(now)

    def _line(self, now: float) -> None:
        self._last_line = now
        elapsed = now - self.start
        rate = self.count / elapsed if elapsed > 0 else 0.0
        text = f"{self.desc}: {self.count}"
        if self.total:
            text += f"/{self.total} {self.unit}s ({100 * self.count // self.total} %)"
            if rate > 0 and self.count < self.total:
                text += (
                    f", {format_rate(rate)} {self.unit}/s, "
                    f"ETA {format_seconds((self.total - self.count) / rate)}"
                )
            else:
                text += f", {format_rate(rate)} {self.unit}/s"
        else:
            text += f" {self.unit}s, {format_rate(rate)} {self.unit}/s"
        print(text, file=self._stream, flush=True)

    def write(self, message: str) -> None:
        """Prints a message (e.g. a skipped case) without breaking the bar."""
        if self._bar is not None:
            self._bar.write(message, file=self._stream)
        else:
            print(message, file=self._stream, flush=True)

    def close(self, summary: str | None = None) -> None:
        """Removes the bar and prints the one-line summary, if given."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        if summary:
            print(summary, file=self._stream, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Silent(Progress):
    """A `Progress` that counts and prints nothing (library calls that asked for quiet)."""

    def __init__(self, total: int | None = None, desc: str = "", unit: str = "it", **_):
        super().__init__(total, desc, unit, terminal=False)

    def update(self, n: int = 1) -> None:
        self.count += int(n)

    def write(self, message: str) -> None:
        pass

    def close(self, summary: str | None = None) -> None:
        self._closed = True
