"""A one-line progress display on stderr for long work; silent when stderr is not a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``[####------] 4/10 trials  stage: bench  12.3 s`` redrawn in place.

    Parameters
    ----------
    total : int
        How many steps make 100%.
    what : str
        What is counted (``trials``).
    stream : TextIO, optional
        Where to draw (default stderr); nothing is drawn unless it is a terminal.
    enabled : bool
        False draws nothing, even on a terminal.
    """

    def __init__(self, total: int, what: str, stream: TextIO | None = None,
                 enabled: bool = True) -> None:
        self.total, self.what, self.done, self.note = max(total, 1), what, 0, ""
        self.stream = stream or sys.stderr
        self.enabled = enabled and bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = self.t_count = time.monotonic()

    def start_counting(self) -> None:
        """Mark the start of the counted work (the ETA is based on it)."""
        self.t_count = time.monotonic()

    def line(self) -> str:
        """The current line (without drawing it)."""
        width = 20
        filled = int(width * self.done / self.total)
        elapsed = time.monotonic() - self.t0
        eta = ""
        if 0 < self.done < self.total:
            per_step = (time.monotonic() - self.t_count) / self.done
            eta = f"  ETA {per_step * (self.total - self.done):.0f} s"
        return (f"[{'#' * filled}{'-' * (width - filled)}] {self.done}/{self.total} "
                f"{self.what}  {self.note}  {elapsed:.1f} s{eta}")

    def update(self, done: int | None = None, note: str | None = None) -> None:
        """Set progress and/or the note, then redraw."""
        if done is not None:
            self.done = done
        if note is not None:
            self.note = note
        if self.enabled:
            self.stream.write("\r\033[K" + self.line())
            self.stream.flush()

    def close(self) -> None:
        """Clear the line."""
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()
