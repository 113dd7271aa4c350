"""Keep secrets out of what is recorded: params, tags, artifacts, the spool and published runs.

A key is secret-looking when it names a token, secret, password, key or credential
(:data:`REDACT_PATTERN`, searched ignoring case, also after splitting camelCase), or
matches a pattern the user adds (``redact=[…]`` in the config, ``bench publish --redact``).
Its value is replaced by :data:`REDACTED`.  Values of secret-looking environment
variables and config keys of at least :data:`SCRUB_MIN_LEN` characters are also cut out
of every other value and of text artifacts, wherever they appear.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

#: The words as a part of a key, so ``env.API_TOKEN``, ``APIKEY``, ``aws.secret_access_key``,
#: ``MLFLOW_TRACKING_PASSWORD`` match, and ``config.hash``, ``tokenizer``, ``monkey`` do not.
REDACT_PATTERN = (r"(?:^|[^a-z0-9])(?:api|auth)?(?:token|secret|passw(?:or)?d|key|credential)s?"
                  r"(?:$|[^a-z0-9])")
REDACTED = "[redacted]"
#: A secret value this long is also cut out of every other value and of text artifacts.
SCRUB_MIN_LEN = 8
#: Artifacts larger than this are not scanned (logs are capped well below it).
SCAN_LIMIT = 64 << 20


def compile_patterns(extra: Iterable[str] = ()) -> list[re.Pattern[str]]:
    """The default pattern plus ``extra`` regular expressions, compiled ignoring case.

    Raises
    ------
    ValueError
        When an extra pattern is not a regular expression (the message names it).
    """
    out = [re.compile(REDACT_PATTERN, re.IGNORECASE)]
    for pattern in extra:
        try:
            out.append(re.compile(str(pattern), re.IGNORECASE))
        except re.error as exc:
            raise ValueError(f"redact pattern {pattern!r} is not a regular expression ({exc}); "
                             "e.g. redact=[cookie] or redact=['MYSITE_.*']") from None
    return out


def secret_key(key: str, regexes: list[re.Pattern[str]]) -> bool:
    """Whether a key (a param, tag or environment variable name) looks secret."""
    split = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key)
    return any(r.search(k) for r in regexes for k in (key, split))


class Redactor:
    """Redacts mappings, text and files.

    Parameters
    ----------
    extra : iterable of str
        Regular expressions added to :data:`REDACT_PATTERN`.
    environ : mapping, optional
        An environment whose secret-looking variables' values are scrubbed everywhere
        (default: this process's).
    """

    def __init__(self, extra: Iterable[str] = (),
                 environ: Mapping[str, str] | None = None) -> None:
        self.regexes = compile_patterns(extra)
        self.secrets: set[str] = set()
        env = os.environ if environ is None else environ
        self.remember(v for k, v in env.items() if secret_key(k, self.regexes))

    def remember(self, values: Iterable[str]) -> None:
        """Scrub these values from now on (those shorter than SCRUB_MIN_LEN are ignored)."""
        self.secrets.update(str(v) for v in values if len(str(v)) >= SCRUB_MIN_LEN)

    def text(self, value: str) -> str:
        """``value`` with every known secret cut out."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def mapping(self, values: Mapping[str, object]) -> dict[str, str]:
        """Secret-looking keys' values replaced, known secrets cut out of the others."""
        out = {str(k): str(v) for k, v in values.items()}
        hits = [k for k in out if secret_key(k, self.regexes)]
        self.remember(out[k] for k in hits)
        for key in out:
            out[key] = REDACTED if key in hits else self.text(out[key])
        return out

    def environment(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment for provenance, with secret-looking variables redacted."""
        return dict(sorted(self.mapping(os.environ if environ is None else environ).items()))

    def _needs(self, path: Path) -> bool:
        if not self.secrets or path.stat().st_size > SCAN_LIMIT:
            return False
        data = path.read_bytes()
        return any(s.encode() in data for s in self.secrets)

    def _rewrite(self, path: Path) -> None:
        data = path.read_bytes()
        for secret in sorted(self.secrets, key=len, reverse=True):
            data = data.replace(secret.encode(), REDACTED.encode())
        path.write_bytes(data)

    def files(self, paths: Iterable[str], scratch: list[str]) -> list[str]:
        """Paths to upload instead of ``paths``: a redacted copy (same name) of each file
        that holds a secret.  New temporary directories are appended to ``scratch``."""
        out = []
        for path in paths:
            if os.path.isfile(path) and self._needs(Path(path)):
                tmp = tempfile.mkdtemp(prefix="bench-redact-")
                scratch.append(tmp)
                copy = Path(tmp) / os.path.basename(path)
                shutil.copyfile(path, copy)
                self._rewrite(copy)
                path = str(copy)
            out.append(path)
        return out

    def directory(self, directory: str, scratch: list[str]) -> str:
        """A redacted copy of a directory tree when a file in it holds a secret."""
        if not self.secrets or not os.path.isdir(directory):
            return directory
        found = [p for p in Path(directory).rglob("*") if p.is_file() and self._needs(p)]
        if not found:
            return directory
        tmp = tempfile.mkdtemp(prefix="bench-redact-")
        scratch.append(tmp)
        copy = Path(tmp) / Path(directory).name
        shutil.copytree(directory, copy)
        for path in found:
            self._rewrite(copy / path.relative_to(directory))
        return str(copy)
