"""The benchmark output contract: one JSON object per line on stdout.

Every benchmark program (``runners/benches/*``, or a user's own command) prints its
results as JSON lines of this form::

    {"name": "latency", "value": 1.27, "unit": "us", "direction": "lower",
     "step": 1024, "tags": {"rank": 0}}

``name`` (str) and ``value`` (number) are required.  ``unit`` (str, default ``""``),
``direction`` (``"lower"`` or ``"higher"`` is better, default ``"lower"``), ``step``
(int, e.g. a message size or a rank) and ``tags`` (an object of str → scalar) are optional.
Lines that do not start with ``{`` are ignored (a program may print other text);
a line that starts with ``{`` but is not a valid result is an error.  When the output is
read from a file (:func:`parse_file`), it is streamed: undecodable bytes are replaced
(U+FFFD), and a line that starts with ``{`` but is longer than :data:`RESULT_LINE_LIMIT`
characters is an error saying it is too long.
"""

from __future__ import annotations

import codecs
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DIRECTIONS = ("lower", "higher")
RESULT_LINE_LIMIT = 1 << 16
"""The longest result line :func:`parse_file` accepts, in characters (64 Ki)."""
READ_CHUNK = 1 << 20
"""How many bytes :func:`iter_lines` reads at a time."""
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
"""The characters :meth:`str.splitlines` ends a line at."""


class ResultParseError(ValueError):
    """A result line that does not follow the contract.

    Parameters
    ----------
    line : str
        The offending line (kept whole, for the failure message).
    reason : str
        What is wrong with it.
    """

    def __init__(self, line: str, reason: str) -> None:
        super().__init__(f"{reason}: {line[:300]!r}")
        self.line = line
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (ResultParseError, (self.line, self.reason))


@dataclass(frozen=True)
class Result:
    """One measured value, as a benchmark program reported it."""

    name: str
    value: float
    unit: str = ""
    direction: str = "lower"
    step: int | None = None
    tags: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """Serialise back to one contract line."""
        out: dict[str, Any] = {"name": self.name, "value": self.value, "unit": self.unit,
                               "direction": self.direction}
        if self.step is not None:
            out["step"] = self.step
        if self.tags:
            out["tags"] = self.tags
        return json.dumps(out)


def parse_line(line: str) -> Result:
    """Parse one contract line.

    Parameters
    ----------
    line : str
        A line starting with ``{``.

    Returns
    -------
    Result

    Raises
    ------
    ResultParseError
        When the line is not JSON or misses/mistypes a field.
    """
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ResultParseError(line, f"not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise ResultParseError(line, "a result line must be a JSON object")
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise ResultParseError(line, "'name' must be a non-empty string")
    value = obj.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ResultParseError(line, "'value' must be a finite number")
    unit = obj.get("unit", "")
    if not isinstance(unit, str):
        raise ResultParseError(line, "'unit' must be a string")
    direction = obj.get("direction", "lower")
    if direction not in DIRECTIONS:
        raise ResultParseError(line, "'direction' must be 'lower' or 'higher'")
    step = obj.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        raise ResultParseError(line, "'step' must be an integer")
    tags = obj.get("tags", {})
    if not isinstance(tags, dict):
        raise ResultParseError(line, "'tags' must be an object")
    return Result(name, float(value), unit, direction, step, dict(tags))


def parse_output(text: str, require: bool = True) -> list[Result]:
    """Parse every result line in a program's stdout.

    Parameters
    ----------
    text : str
        The whole stdout.
    require : bool
        Raise when no result line is found at all.

    Returns
    -------
    list of Result
    """
    results = [parse_line(s) for s in (raw.strip() for raw in text.splitlines())
               if s.startswith("{")]
    if require and not results:
        raise ResultParseError(text[-300:], "no JSON result lines in the output")
    return results


def iter_lines(path: str | Path, max_chars: int = RESULT_LINE_LIMIT,
               chunk: int = READ_CHUNK) -> Iterator[tuple[str, int]]:
    """Stream the lines of a file as text, with bounded memory.

    Bytes are decoded as UTF-8 with undecodable bytes replaced (U+FFFD); lines end where
    :meth:`str.splitlines` would end them.  Only the first ``max_chars`` characters of a
    line are kept, so a huge line without a newline costs no more than that.

    Parameters
    ----------
    path : path
        The file (e.g. a command's stdout log).
    max_chars : int
        How many characters of each line to keep.
    chunk : int
        How many bytes to read at a time.

    Yields
    ------
    head : str
        The line (with its line break) cut to ``max_chars`` characters.
    length : int
        The line's full length in characters, line break included.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    head, length = "", 0
    with open(path, "rb") as fh:
        while True:
            data = fh.read(chunk)
            text = decoder.decode(data, final=not data)
            pieces = text.splitlines(keepends=True)
            last = len(pieces) - 1
            for i, piece in enumerate(pieces):
                if len(head) < max_chars:
                    head = piece[:max_chars] if not head else head + piece[:max_chars - len(head)]
                length += len(piece)
                if i < last or piece[-1] in LINE_BREAKS:
                    yield head, length
                    head, length = "", 0
            if not data:
                break
    if length:
        yield head, length


def file_tail(path: str | Path, chars: int = 300) -> str:
    """The last ``chars`` characters of a file (for an error message)."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        fh.seek(max(0, size - 4 * chars))
        return fh.read().decode("utf-8", errors="replace")[-chars:]


def parse_file(path: str | Path, require: bool = True,
               max_line: int = RESULT_LINE_LIMIT) -> list[Result]:
    """Parse every result line in a program's stdout file, streaming it line by line.

    The same contract as :func:`parse_output`, for an output of any size and encoding:
    the file is never held in memory whole, undecodable bytes are replaced, and a line
    that starts with ``{`` but is longer than ``max_line`` characters is an error.

    Parameters
    ----------
    path : path
        The stdout log.
    require : bool
        Raise when no result line is found at all.
    max_line : int
        The longest result line accepted, in characters.

    Returns
    -------
    list of Result

    Raises
    ------
    ResultParseError
        On a line starting with ``{`` that is not a valid result or is too long, or when
        ``require`` and there is no result line.
    """
    results: list[Result] = []
    # Keep room for a line break ("\r\n"): a line at the limit is then read whole, and
    # only a longer one is cut.
    for head, length in iter_lines(path, max_line + 2):
        line = head.strip()
        if not line.startswith("{"):
            continue
        if length > max_line + 2 or len(line) > max_line:
            raise ResultParseError(line[:300], f"result line too long ({length} characters; "
                                   f"the limit is {max_line})")
        results.append(parse_line(line))
    if require and not results:
        raise ResultParseError(file_tail(path), "no JSON result lines in the output")
    return results
