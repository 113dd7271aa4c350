"""Keep secrets out of what is recorded: params, tags, artifacts, the spool and published runs.

An environment variable is secret-looking when a word of its name is a secret word
(:data:`SECRET_WORDS`: TOKEN, SECRET, PASSWORD, KEY, CREDENTIAL, …); a param or tag key
when its last part ends in one (``db.password``, not ``bench.key_size``), or when it is a
config environment variable (``machine.env.NAME``); either also when it matches a pattern
the user adds (``redact=[…]`` in the config, ``bench publish --redact``).  The value is
replaced by :data:`REDACTED`.  Values of such variables and keys of at least
:data:`SCRUB_MIN_LEN` characters, and passwords in URLs (``https://user:pw@host``), are also
cut out of every other value and of text artifacts; YAML config artifacts have secret keys
redacted by structure, whatever the value's length.  Binary artifacts are left alone.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

#: Words that make a name secret-looking (names are split at non-alphanumerics and camelCase).
SECRET_WORDS = frozenset({"token", "secret", "secrets", "password", "passwd", "passphrase",
                          "key", "credential", "credentials", "apikey", "authtoken",
                          "accesskey", "secretkey"})
REDACTED = "[redacted]"
#: A secret value this long is also cut out of every other value and of text artifacts.
SCRUB_MIN_LEN = 8
#: ``scheme://user:password@`` in any value: the password goes.
URL_PASSWORD = re.compile(r"([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@", re.IGNORECASE)
URL_PASSWORD_BYTES = re.compile(URL_PASSWORD.pattern.encode(), re.IGNORECASE)
#: Artifacts larger than this are not scanned (logs are capped well below it).
SCAN_LIMIT = 64 << 20


def compile_patterns(extra: Iterable[str] = ()) -> list[re.Pattern[str]]:
    """The user's extra patterns of secret keys, compiled ignoring case.

    Raises
    ------
    ValueError
        When a pattern is not a regular expression (the message names it).
    """
    out = []
    for pattern in extra:
        try:
            out.append(re.compile(str(pattern), re.IGNORECASE))
        except re.error as exc:
            raise ValueError(f"redact pattern {pattern!r} is not a regular expression ({exc}); "
                             "e.g. redact=[cookie] or redact=['MYSITE_.*']") from None
    return out


def words(name: str) -> list[str]:
    """A name's words, lower case: ``apiKey`` → api, key; ``AWS_SECRET_ACCESS_KEY`` → aws, …"""
    split = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return [w for w in re.split(r"[^A-Za-z0-9]+", split.lower()) if w]


def secret_env(name: str, regexes: list[re.Pattern[str]] = []) -> bool:  # noqa: B006
    """Whether an environment variable looks secret: any word of its name is a secret word
    (``SECRET_KEY_BASE``, ``MLFLOW_TRACKING_PASSWORD``), or an extra pattern matches."""
    return bool(SECRET_WORDS.intersection(words(name))) or any(r.search(name) for r in regexes)


def secret_key(key: str, regexes: list[re.Pattern[str]] = []) -> bool:  # noqa: B006
    """Whether a param or tag key looks secret.

    Its last dotted part must end in a secret word (``env.API_TOKEN``, ``db.password``,
    ``aws.secret_access_key``; not ``bench.key_size``, ``max_tokens``, ``cache.keys``), or
    it is an environment variable of the config (``machine.env.NAME``: see
    :func:`secret_env`), or an extra pattern matches the whole key.
    """
    parts = key.split(".")
    if len(parts) > 1 and parts[-2] == "env":
        return secret_env(parts[-1], regexes) or any(r.search(key) for r in regexes)
    last = words(parts[-1])
    return bool(last) and last[-1] in SECRET_WORDS or any(r.search(key) for r in regexes)


class Redactor:
    """Redacts mappings, text and files.

    Parameters
    ----------
    extra : iterable of str
        Regular expressions of secret names, added to the secret words.
    environ : mapping, optional
        An environment whose secret-looking variables' values are scrubbed everywhere
        (default: this process's).
    """

    def __init__(self, extra: Iterable[str] = (),
                 environ: Mapping[str, str] | None = None) -> None:
        self.regexes = compile_patterns(extra)
        self.secrets: set[str] = set()
        env = os.environ if environ is None else environ
        self.remember(v for k, v in env.items() if secret_env(k, self.regexes))

    def remember(self, values: Iterable[str]) -> None:
        """Scrub these values from now on (those shorter than SCRUB_MIN_LEN are ignored)."""
        self.secrets.update(str(v) for v in values if len(str(v)) >= SCRUB_MIN_LEN)

    def text(self, value: str) -> str:
        """``value`` with every known secret and every password in a URL cut out."""
        if "@" in value:
            value = URL_PASSWORD.sub(rf"\1{REDACTED}@", value)
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
        env = os.environ if environ is None else environ
        hits = [k for k in env if secret_env(k, self.regexes)]
        self.remember(env[k] for k in hits)
        return {k: REDACTED if k in hits else self.text(env[k]) for k in sorted(env)}

    def _redacted(self, path: Path) -> bytes | None:
        """The redacted content of a text file, or None when it needs none (binary files,
        e.g. plots, are left alone: a byte replacement could corrupt them)."""
        if path.stat().st_size > SCAN_LIMIT:
            return None
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            return None
        out = data
        if path.suffix in (".yaml", ".yml"):
            out = self._yaml(out)
        if b"@" in out:
            out = URL_PASSWORD_BYTES.sub(rb"\1" + REDACTED.encode() + b"@", out)
        for secret in sorted(self.secrets, key=len, reverse=True):
            out = out.replace(secret.encode(), REDACTED.encode())
        return None if out == data else out

    def _yaml(self, data: bytes) -> bytes:
        """A config file with the values of secret keys redacted, however short they are
        (mappings by key; ``key=value`` override strings by their key)."""
        import yaml

        try:
            tree = yaml.safe_load(data)
        except yaml.YAMLError:
            return data
        changed = False

        def walk(node: object, path: str) -> object:
            nonlocal changed
            if isinstance(node, dict):
                out: dict[object, object] = {}
                for k, v in node.items():
                    key = f"{path}.{k}" if path else str(k)
                    if not isinstance(v, dict | list) and secret_key(key, self.regexes):
                        changed = changed or v != REDACTED
                        out[k] = REDACTED
                    else:
                        out[k] = walk(v, key)
                return out
            if isinstance(node, list):
                return [walk(v, path) for v in node]
            if isinstance(node, str) and "=" in node:     # overrides, also comma-joined
                pieces = node.split(",")
                for i, piece in enumerate(pieces):
                    key = piece.split("=", 1)[0]
                    if "=" in piece and secret_key(key.lstrip("+~"), self.regexes):
                        changed = True
                        pieces[i] = f"{key}={REDACTED}"
                return ",".join(pieces)
            return node

        tree = walk(tree, "")
        return yaml.safe_dump(tree, sort_keys=False).encode() if changed else data

    def files(self, paths: Iterable[str], scratch: list[str]) -> list[str]:
        """Paths to upload instead of ``paths``: a redacted copy (same name) of each file
        that holds a secret.  New temporary directories are appended to ``scratch``."""
        out = []
        for path in paths:
            data = self._redacted(Path(path)) if os.path.isfile(path) else None
            if data is not None:
                tmp = tempfile.mkdtemp(prefix="bench-redact-")
                scratch.append(tmp)
                copy = Path(tmp) / os.path.basename(path)
                copy.write_bytes(data)
                path = str(copy)
            out.append(path)
        return out

    def directory(self, directory: str, scratch: list[str]) -> str:
        """A redacted copy of a directory tree when a file in it holds a secret."""
        if not os.path.isdir(directory):
            return directory
        found = {p: d for p in Path(directory).rglob("*")
                 if p.is_file() and (d := self._redacted(p)) is not None}
        if not found:
            return directory
        tmp = tempfile.mkdtemp(prefix="bench-redact-")
        scratch.append(tmp)
        copy = Path(tmp) / Path(directory).name
        shutil.copytree(directory, copy)
        for path, data in found.items():
            (copy / path.relative_to(directory)).write_bytes(data)
        return str(copy)
