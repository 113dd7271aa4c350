"""Notifications of new regressions: a JSON message posted to a webhook, or one mail.

A target is an ``http(s)://`` URL (a webhook: Slack, Mattermost, any receiver of JSON) or
``mailto:ADDR[,ADDR...]`` (mail through the SMTP server of :class:`SmtpSettings`).  The
message (:func:`message`) is ``{"version": 1, "text": ..., "alerts": [...]}``: ``text`` is
what a chat shows (Slack reads that field; a mail's body is the same, unescaped),
``alerts`` the same as data.

:func:`send` never raises because a receiver is down or refuses: it retries transient
failures (connection errors, timeouts, HTTP 5xx/429, SMTP 4xx) with a bounded backoff and
then returns one warning line, so a caller's exit code keeps its meaning.  Deduplication
(one message per regression, not one per night) is the caller's: it records the
:meth:`Alert.key` of every step it notified and passes only new ones (see :func:`fresh`).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from runners.errors import InputError, one_line
from runners.publish.notify.mail import (
    MailDeferred,
    MailRefused,
    SmtpSettings,
    mail_recipients,
    send_mail,
)

#: Version of the JSON message (bumped when a field changes meaning or disappears).
FORMAT = 1
#: The longest pause between two attempts, in seconds, whatever ``backoff`` asks for.
MAX_PAUSE = 5.0
#: The accepted forms of a target, as error messages name them.
FORMS = "an http:// or https:// webhook URL, or mailto:ADDRESS[,ADDRESS...]"


@dataclass(frozen=True)
class Alert:
    """One new regression of one series, as a notification tells it.

    Attributes
    ----------
    experiment, machine, fs, config_hash, metric : str
        The series (``config_hash`` is the run's ``config.hash`` tag).
    unit, direction : str
        Unit of the metric (``""`` if unknown); the better direction, lower or higher.
    change, baseline_median, latest_median : float
        ``(latest - baseline) / |baseline|`` (e.g. ``0.12``) of the medians around the step.
    commit_before, commit_after, run_before, run_after : str (commits may be None)
        Commit and run id of the last run before and of the first run after the step.
    confirmed : str
        How the step was confirmed, e.g. ``"confirmed by 3 reruns (p=0.004)"`` (or ``""``).
    report_url : str or None
        Where the report with this series' plot is.
    """

    experiment: str
    machine: str
    fs: str
    config_hash: str
    metric: str
    unit: str
    direction: str
    change: float
    baseline_median: float
    latest_median: float
    commit_before: str | None
    commit_after: str | None
    run_before: str
    run_after: str
    confirmed: str = ""
    report_url: str | None = None

    @property
    def series(self) -> str:
        """``experiment metric on machine/fs (config HASH)``, for people."""
        return (f"{self.experiment} {self.metric} on {self.machine}/{self.fs} "
                f"(config {self.config_hash})")

    def series_key(self) -> str:
        """A stable 16-hex-digit identity of the series (experiment, machine, fs,
        ``config.hash``, metric): usable as an MLflow tag key or value."""
        parts = (self.experiment, self.machine, self.fs, self.config_hash, self.metric)
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]

    def key(self) -> str:
        """A stable 16-hex-digit identity of this step: series and ``run_after`` (the first
        run after it); the same step judged again another night has the same key."""
        parts = (self.series_key(), self.run_after)
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """The fields (non-finite numbers as ``None``) with ``series`` and ``key``."""
        out: dict[str, Any] = {k: (None if isinstance(v, float) and not math.isfinite(v)
                                   else v) for k, v in asdict(self).items()}
        out["series"], out["key"] = self.series, self.key()
        return out

    @classmethod
    def from_row(cls, row: Mapping[str, Any], *, unit: str = "", confirmed: str = "",
                 report_url: str | None = None) -> Alert:
        """An alert from a row of :func:`runners.analysis.series.regress_frame` (``effect``,
        ``run_id_before``/``_after`` ...); missing commits (None, NaN, ``<NA>``): None."""

        def text(key: str) -> str | None:
            value = str(row.get(key))
            return None if value in ("", "<NA>", "nan", "NaN", "None") else value

        return cls(experiment=str(row["experiment"]), machine=str(row["machine"]),
                   fs=str(row["fs"]), config_hash=str(row["config_hash"]),
                   metric=str(row["metric"]), unit=unit, direction=str(row["direction"]),
                   change=float(row["effect"]), baseline_median=float(row["baseline_median"]),
                   latest_median=float(row["latest_median"]),
                   commit_before=text("commit_before"), commit_after=text("commit_after"),
                   run_before=str(row["run_id_before"]), run_after=str(row["run_id_after"]),
                   confirmed=confirmed, report_url=report_url)


def fresh(alerts: Iterable[Alert], notified: Collection[str]) -> list[Alert]:
    """The alerts whose :meth:`Alert.key` is not in ``notified`` (and each key once)."""
    seen, out = set(notified), []
    for alert in alerts:
        if alert.key() not in seen:
            seen.add(alert.key())
            out.append(alert)
    return out


def check_target(target: str, environ: Mapping[str, str]) -> None:
    """Check a notification target before anything runs: ``http(s)://...`` (webhook) or
    ``mailto:ADDR[,ADDR...]`` (mail; needs ``BENCH_SMTP_HOST`` in ``environ``).

    Raises
    ------
    InputError
        One line: what is wrong and which forms are accepted, or which variable to set.
    """
    scheme = target.split(":", 1)[0].lower() if ":" in target else ""
    if scheme == "mailto":
        mail_recipients(target)
        SmtpSettings.from_environ(environ)
        return
    if scheme in ("http", "https"):
        try:
            parts = urlsplit(target)
            host, _ = parts.hostname, parts.port   # .port raises on a port that is no number
        except ValueError as exc:
            raise InputError(f"notification target {shown(target)!r} is not a valid URL "
                             f"({exc}); give {FORMS}") from None
        if host:
            return
        raise InputError(f"notification target {shown(target)!r} has no host; give {FORMS}")
    raise InputError(f"notification target {shown(target)!r} is not supported; give {FORMS}")


def shown(target: str) -> str:
    """A target as it may be printed: a URL's path and query (often the webhook's secret
    token) and any user:password are left out."""
    if target.lower().startswith("mailto:") or "://" not in target:
        return target
    try:
        parts = urlsplit(target)
        where = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return target.split("://", 1)[0] + "://…"
    rest = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{where}{rest}"


def headline(alerts: Sequence[Alert]) -> str:
    """``bench: 2 new regressions on cori, perlmutter`` (the mail's subject)."""
    machines = ", ".join(sorted({a.machine for a in alerts}))
    count = f"{len(alerts)} new regression{'' if len(alerts) == 1 else 's'}"
    return f"bench: {count} on {machines}" if alerts else "bench: no new regressions"


def describe(alert: Alert) -> str:
    """One paragraph for people: series, size, medians, commits, runs, confirmation, link."""
    unit = f" {alert.unit}" if alert.unit else ""
    lines = [f"Regression: {alert.series}: {alert.change:+.1%} "
             f"(median {alert.baseline_median:.4g}{unit} → {alert.latest_median:.4g}{unit}; "
             f"{alert.direction} is better)"]
    before, after = alert.commit_before, alert.commit_after
    if before and after and before == after:
        lines.append(f"  same commit {before[:12]} before and after: not a code change "
                     "(machine, filesystem or environment?)")
    elif before and after:
        lines.append(f"  commits {before[:12]}..{after[:12]}")
    elif before or after:
        lines.append(f"  commit {(before or after or '')[:12]} "
                     f"({'before' if before else 'after'} the step; the other is unknown)")
    lines.append(f"  runs {alert.run_before} (before) → {alert.run_after} (first after)")
    if alert.confirmed:
        lines.append(f"  {alert.confirmed}")
    if alert.report_url:
        lines.append(f"  report: {alert.report_url}")
    series = "/".join((alert.experiment, alert.machine, alert.fs, alert.config_hash,
                       alert.metric))
    lines.append(f"  if intended: bench baseline accept --series {series} --reason '...'")
    return "\n".join(lines)


def plain(alerts: Sequence[Alert]) -> str:
    """The headline, then one paragraph per alert (the body of a mail)."""
    return "\n\n".join([headline(alerts), *(describe(a) for a in alerts)])


def message(alerts: Sequence[Alert]) -> dict[str, Any]:
    """The JSON message: ``version``, ``text`` (:func:`plain` with ``&``, ``<`` and ``>``
    escaped as Slack asks: they are its markup) and ``alerts`` (each one's
    :meth:`Alert.to_dict`)."""
    text = plain(alerts).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return {"version": FORMAT, "text": text, "alerts": [a.to_dict() for a in alerts]}


class _Permanent(Exception):
    """A failure that another attempt would not cure (HTTP 4xx)."""


def _retrying(action: Callable[[], str | None], retries: int,
              backoff: float) -> tuple[int, str | None, str | None]:
    """Call ``action`` until it returns, at most ``1 + retries`` times, pausing
    ``backoff * 2**i`` (at most :data:`MAX_PAUSE`) seconds between attempts.  Returns
    ``(attempts, failure, note)``: ``failure`` is why the last attempt failed
    (None when one succeeded), ``note`` what a successful ``action`` returned."""
    attempts = max(1, 1 + retries)
    for i in range(attempts):
        try:
            return i + 1, None, action()
        except (_Permanent, MailRefused) as exc:
            return i + 1, str(exc), None
        # refused, reset, timed out, HTTP 5xx (URLError is an OSError), a garbled reply
        except (OSError, http.client.HTTPException) as exc:
            if i + 1 == attempts:
                return attempts, _reason(exc), None
            time.sleep(min(backoff * 2 ** i, MAX_PAUSE))
        except Exception as exc:  # anything else (a bad host name ...): a warning, not a crash
            return i + 1, one_line(exc), None
    raise AssertionError("unreachable")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, MailDeferred):
        return str(exc)
    if isinstance(exc, urllib.error.URLError):
        return one_line(exc.reason) if isinstance(exc.reason, BaseException) else str(exc.reason)
    return one_line(exc)


def _post(url: str, body: bytes, timeout: float) -> None:
    """POST once; HTTP 5xx and 429 raise (to be retried), other 4xx are permanent."""
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "hpc-bench-runner notify"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(65536)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code >= 500 or exc.code == 429:
            raise
        raise _Permanent(_reason(exc)) from None


def send(target: str, alerts: Sequence[Alert], *, environ: Mapping[str, str],
         retries: int = 2, timeout: float = 5.0, backoff: float = 0.5) -> str | None:
    """Post the message of some alerts to a webhook, or mail it (at least once: a reply
    lost to a timeout means the message is sent again).

    Parameters
    ----------
    target : str
        As accepted by :func:`check_target` (checked again here).
    alerts : sequence of Alert
        The new regressions (nothing is sent when empty).
    environ : mapping
        The environment (``BENCH_SMTP_*`` for mail).
    retries : int
        Further attempts after a transient failure (connection refused or reset, timeout,
        HTTP 5xx or 429, SMTP 4xx).
    timeout : float
        Seconds per network operation of one attempt.
    backoff : float
        Pause before the first retry, doubled for each next one (at most
        :data:`MAX_PAUSE`).  A receiver that never answers costs ``(1 + retries) *
        timeout`` plus the pauses; one that refuses connections only the pauses.

    Returns
    -------
    str or None
        None when the receiver took the message, else one warning line to print (the target
        without its secret path).  Never raises for a receiver that is down or refuses.

    Raises
    ------
    InputError
        The target itself is wrong (see :func:`check_target`).
    """
    check_target(target, environ)
    if not alerts:
        return None
    body = message(alerts)
    action: Callable[[], str | None]
    if target.lower().startswith("mailto:"):
        settings = SmtpSettings.from_environ(environ)
        recipients = mail_recipients(target)
        where = f"{target} (via {settings.host}:{settings.port})"

        attachment = ("regressions.json", "application/json",
                      json.dumps(body, indent=1).encode())

        def action() -> str | None:
            return send_mail(settings, recipients, headline(alerts), plain(alerts),
                             attachment, timeout)
    else:
        where = shown(target)
        data = json.dumps(body).encode()

        def action() -> str | None:
            _post(target, data, timeout)
            return None
    attempts, failure, note = _retrying(action, retries, backoff)
    if failure is None:
        return None if note is None else f"warning: notification to {where}: {note}"
    tries = f"{attempts} attempt{'' if attempts == 1 else 's'}"
    return f"warning: notification to {where} failed after {tries}: {failure}"
