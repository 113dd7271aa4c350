"""Notifications of new regressions (runners.publish.notify): the message, targets checked
before anything runs, a real local webhook receiver and a real SMTP sink (aiosmtpd) on
127.0.0.1, retries and the one warning line when a receiver is down or refuses."""

from __future__ import annotations

import json
import math
import socket
import time

import pytest

from runners.errors import InputError
from runners.publish.notify import Alert, check_target, fresh, message, plain, send, shown
from runners.publish.notify.mail import SmtpSettings
from tests.support import HttpReceiver, SmtpSink

RUN_A, RUN_B = "a" * 32, "b" * 32
SENDER = {"BENCH_SMTP_FROM": "bench@ci.example.org"}


def alert(**changes: object) -> Alert:
    """A regression of total_s on cori/scratch: +12% between two commits, confirmed."""
    fields: dict[str, object] = dict(
        experiment="mpi4py_import", machine="cori", fs="scratch", config_hash="1a2b3c4d",
        metric="total_s.median", unit="s", direction="lower", change=0.12,
        baseline_median=1.25, latest_median=1.4, commit_before="0123456789abcdef0123",
        commit_after="fedcba9876543210fedc", run_before=RUN_A, run_after=RUN_B,
        confirmed="confirmed by 3 reruns (p=0.004)",
        report_url="https://ci.example.org/bench/index.html#cori")
    fields.update(changes)
    return Alert(**fields)  # type: ignore[arg-type]


ALERTS = [alert(), alert(machine="perlmutter", metric="rate.median", unit="GB/s",
                         direction="higher", change=-0.08, baseline_median=10.0,
                         latest_median=9.2, commit_after=None, confirmed="",
                         report_url=None)]


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening (just released by the system)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_message_text_names_series_size_medians_commits_runs_confirmation_link() -> None:
    body = message(ALERTS)
    assert body["version"] == 1
    text = body["text"]
    head, first, second = text.split("\n\n")
    assert head == "bench: 2 new regressions on cori, perlmutter"
    assert first.splitlines() == [
        "Regression: mpi4py_import total_s.median on cori/scratch (config 1a2b3c4d): +12.0% "
        "(median 1.25 s → 1.4 s; lower is better)",
        "  commits 0123456789ab..fedcba987654",
        f"  runs {RUN_A} (before) → {RUN_B} (first after)",
        "  confirmed by 3 reruns (p=0.004)",
        "  report: https://ci.example.org/bench/index.html#cori",
        "  if intended: bench baseline accept --series "
        "mpi4py_import/cori/scratch/1a2b3c4d/total_s.median --reason '...'"]
    assert "-8.0% (median 10 GB/s → 9.2 GB/s; higher is better)" in second
    assert "commit 0123456789ab (before the step; the other is unknown)" in second
    assert "report:" not in second and "confirmed" not in second
    assert [a["machine"] for a in body["alerts"]] == ["cori", "perlmutter"]
    first_alert = body["alerts"][0]
    assert first_alert["commit_after"] == "fedcba9876543210fedc"   # in full, as data
    assert first_alert["key"] == ALERTS[0].key()
    assert first_alert["series"] == ALERTS[0].series
    assert first_alert["change"] == 0.12 and first_alert["run_after"] == RUN_B


def test_message_is_strict_json_and_says_when_commits_do_not_differ() -> None:
    body = message([alert(baseline_median=math.nan, commit_after="0123456789abcdef0123")])
    assert json.loads(json.dumps(body, allow_nan=False))["alerts"][0]["baseline_median"] is None
    assert "same commit 0123456789ab before and after: not a code change" in body["text"]
    assert message([])["text"] == "bench: no new regressions"
    assert message(ALERTS[:1])["text"].startswith("bench: 1 new regression on cori\n")


def test_text_escapes_what_slack_reads_as_markup_but_mail_does_not() -> None:
    odd = [alert(experiment="a<b>&c", report_url="https://ci.example.org/r?x=1&y=2")]
    assert "Regression: a&lt;b&gt;&amp;c total_s.median" in message(odd)["text"]
    assert "report: https://ci.example.org/r?x=1&amp;y=2" in message(odd)["text"]
    assert "Regression: a<b>&c total_s.median" in plain(odd)
    assert message(odd)["alerts"][0]["experiment"] == "a<b>&c"
    assert plain(ALERTS) == message(ALERTS)["text"]   # nothing to escape in the usual case


def test_key_is_the_step_not_the_verdict() -> None:
    same_step = alert(change=0.2, latest_median=1.5, confirmed="", report_url=None)
    assert alert().key() == same_step.key()
    assert len(alert().key()) == 16 and alert().series_key() == alert(run_after="c").series_key()
    others = [alert(run_after="c" * 32), alert(machine="theta"), alert(fs="tmpfs"),
              alert(config_hash="ffff"), alert(metric="import_s.median"),
              alert(experiment="osu")]
    assert len({a.key() for a in [alert(), *others]}) == 1 + len(others)
    assert fresh([alert(), same_step, others[0]], notified={others[0].key()}) == [alert()]


def test_alert_from_a_regress_row() -> None:
    row = {"experiment": "mpi4py_import", "machine": "cori", "fs": "scratch",
           "config_hash": "1a2b3c4d", "metric": "total_s.median", "direction": "lower",
           "effect": 0.12, "baseline_median": 1.25, "latest_median": 1.4,
           "commit_before": "0123456789abcdef0123", "commit_after": math.nan,
           "run_id_before": RUN_A, "run_id_after": RUN_B, "status": "regression"}
    got = Alert.from_row(row, unit="s", confirmed="confirmed by 3 reruns (p=0.004)",
                         report_url="https://ci.example.org/bench/index.html#cori")
    assert got == alert(commit_after=None)


def test_webhook_gets_the_json_message(http_receiver: HttpReceiver) -> None:
    assert send(http_receiver.url, ALERTS, environ={}) is None
    [request] = http_receiver.requests
    assert request.method == "POST" and request.path == "/hooks/T0/B0/secret-token"
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == message(ALERTS)


def test_webhook_500_once_is_retried(http_receiver: HttpReceiver) -> None:
    http_receiver.replies = [500]
    assert send(http_receiver.url, ALERTS, environ={}, backoff=0.01) is None
    assert len(http_receiver.requests) == 2
    assert http_receiver.requests[0].body == http_receiver.requests[1].body


def test_webhook_failing_every_time_gives_one_warning(http_receiver: HttpReceiver) -> None:
    http_receiver.replies = [503, 502, 500, 200]
    warning = send(http_receiver.url, ALERTS, environ={}, retries=2, backoff=0.01)
    assert warning == (f"warning: notification to http://127.0.0.1:"
                       f"{http_receiver.server.server_address[1]}/… failed after 3 attempts: "
                       "HTTP 500 Internal Server Error")
    assert len(http_receiver.requests) == 3


def test_webhook_refusal_is_not_retried(http_receiver: HttpReceiver) -> None:
    http_receiver.replies = [404]
    warning = send(http_receiver.url, ALERTS, environ={}, backoff=0.01)
    assert warning is not None and warning.endswith("failed after 1 attempt: HTTP 404 Not Found")
    assert len(http_receiver.requests) == 1


def test_webhook_down_gives_one_warning_in_bounded_time() -> None:
    url = f"http://127.0.0.1:{closed_port()}/hooks/T0/B0/secret-token"
    start = time.monotonic()
    warning = send(url, ALERTS, environ={}, retries=2, timeout=1.0, backoff=0.05)
    elapsed = time.monotonic() - start
    assert warning is not None and "\n" not in warning
    assert warning.startswith("warning: notification to http://127.0.0.1:")
    assert "failed after 3 attempts: ConnectionRefusedError" in warning
    assert "secret-token" not in warning   # a webhook's path is its secret
    assert elapsed < 5.0   # refused at once; the pauses are 0.05 s and 0.1 s


def test_a_host_name_that_cannot_be_encoded_is_a_warning_too() -> None:
    warning = send(f"http://{'a' * 64}.invalid/hook", ALERTS, environ={}, backoff=0.01)
    assert warning is not None and "failed after 1 attempt: UnicodeError" in warning


def test_webhook_that_hangs_times_out(http_receiver: HttpReceiver) -> None:
    http_receiver.delay = 30.0
    start = time.monotonic()
    warning = send(http_receiver.url, ALERTS, environ={}, retries=1, timeout=0.3, backoff=0)
    assert time.monotonic() - start < 10.0
    assert warning is not None and "failed after 2 attempts" in warning
    assert "timed out" in warning


def test_nothing_is_sent_without_alerts(http_receiver: HttpReceiver) -> None:
    assert send(http_receiver.url, [], environ={}) is None
    assert http_receiver.requests == []


def test_mail_reaches_every_recipient(smtp_sink: SmtpSink) -> None:
    env = {**smtp_sink.env, **SENDER}
    assert send("mailto:oncall@example.org,perf@example.org", ALERTS, environ=env) is None
    [mail] = smtp_sink.mails
    assert mail.sender == "bench@ci.example.org"
    assert mail.recipients == ["oncall@example.org", "perf@example.org"]
    msg = mail.message
    assert msg["Subject"] == "bench: 2 new regressions on cori, perlmutter"
    assert msg["From"] == "bench@ci.example.org"
    assert msg["To"] == "oncall@example.org, perf@example.org"
    text = msg.get_body(preferencelist=("plain",))
    assert text is not None and text.get_content().strip() == plain(ALERTS)
    assert text["Content-Transfer-Encoding"] == "quoted-printable"   # "→" is not 7-bit
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == "regressions.json"
    assert json.loads(attachment.get_content()) == message(ALERTS)
    assert smtp_sink.logins == []   # no BENCH_SMTP_USER: no login


def test_mail_default_sender_and_transient_refusal_retried(smtp_sink: SmtpSink) -> None:
    smtp_sink.replies = ["451 4.3.0 try again later"]
    assert send("mailto:oncall@example.org", ALERTS[:1], environ=smtp_sink.env,
                backoff=0.01) is None
    [mail] = smtp_sink.mails
    assert mail.sender == f"bench@{socket.gethostname()}"
    assert mail.message["Subject"] == "bench: 1 new regression on cori"


def test_mail_logs_in_when_a_user_is_given() -> None:
    with SmtpSink(credentials=("bench", "s3cret")) as sink:
        env = {**sink.env, "BENCH_SMTP_USER": "bench", "BENCH_SMTP_PASSWORD": "s3cret"}
        assert send("mailto:oncall@example.org", ALERTS, environ=env) is None
        assert sink.logins == [("bench", "s3cret")] and len(sink.mails) == 1
        env["BENCH_SMTP_PASSWORD"] = "wrong"
        warning = send("mailto:oncall@example.org", ALERTS, environ=env, backoff=0.01)
        assert warning is not None and "failed after 1 attempt: SMTP 535" in warning
        assert "wrong" not in warning and len(sink.mails) == 1


def test_smtp_settings_from_the_environment_hide_the_password() -> None:
    env = {"BENCH_SMTP_HOST": "smtp.example.org", "BENCH_SMTP_PORT": "587",
           "BENCH_SMTP_USER": "bench", "BENCH_SMTP_PASSWORD": "s3cret",
           "BENCH_SMTP_FROM": "bench@ci.example.org", "BENCH_SMTP_STARTTLS": "1"}
    settings = SmtpSettings.from_environ(env)
    assert settings == SmtpSettings("smtp.example.org", 587, "bench", "s3cret",
                                    "bench@ci.example.org", starttls=True)
    assert "s3cret" not in repr(settings)
    assert SmtpSettings.from_environ({"BENCH_SMTP_HOST": "h"}) == SmtpSettings(
        "h", 25, None, None, f"bench@{socket.gethostname()}", starttls=False)


def test_mail_partly_refused_says_who(smtp_sink: SmtpSink) -> None:
    smtp_sink.refuse = {"gone@example.org"}
    warning = send("mailto:oncall@example.org,gone@example.org", ALERTS,
                   environ=smtp_sink.env)
    assert warning is not None and "some recipients refused: gone@example.org (550" in warning
    assert [m.recipients for m in smtp_sink.mails] == [["oncall@example.org"]]


def test_mail_is_not_sent_in_clear_when_starttls_is_asked(smtp_sink: SmtpSink) -> None:
    env = {**smtp_sink.env, "BENCH_SMTP_STARTTLS": "1"}
    warning = send("mailto:oncall@example.org", ALERTS, environ=env, backoff=0.01)
    assert warning is not None and "failed after 1 attempt" in warning
    assert "STARTTLS" in warning and smtp_sink.mails == []


def test_mail_server_down_gives_one_warning() -> None:
    env = {"BENCH_SMTP_HOST": "127.0.0.1", "BENCH_SMTP_PORT": str(closed_port())}
    start = time.monotonic()
    warning = send("mailto:oncall@example.org", ALERTS, environ=env, timeout=1.0,
                   backoff=0.05)
    assert time.monotonic() - start < 5.0
    assert warning is not None and "\n" not in warning
    assert warning.startswith("warning: notification to mailto:oncall@example.org (via "
                              "127.0.0.1:")
    assert "failed after 3 attempts: ConnectionRefusedError" in warning


@pytest.mark.parametrize(("target", "env", "expected"), [
    ("ftp://example.org/hook", {}, "notification target 'ftp://example.org/…' is not supported; "
     "give an http:// or https:// webhook URL, or mailto:ADDRESS[,ADDRESS...]"),
    ("hooks.example.org/x", {}, "notification target 'hooks.example.org/x' is not supported"),
    ("https:///path", {}, "notification target 'https:///…' has no host"),
    ("http://example.org:port/", {}, "is not a valid URL"),
    ("mailto:oncall@example.org", {}, "mailto: targets need an SMTP server: set "
     "BENCH_SMTP_HOST (and BENCH_SMTP_PORT if not 25)"),
    ("mailto:", {"BENCH_SMTP_HOST": "h"}, "'' is not a mail address"),
    ("mailto:a@x,oncall", {"BENCH_SMTP_HOST": "h"}, "'oncall' is not a mail address"),
    ("mailto:a@x", {"BENCH_SMTP_HOST": "h", "BENCH_SMTP_PORT": "smtp"},
     "BENCH_SMTP_PORT='smtp' is not a port"),
    ("mailto:a@x", {"BENCH_SMTP_HOST": "h", "BENCH_SMTP_USER": "u"},
     "BENCH_SMTP_USER is set but BENCH_SMTP_PASSWORD is not"),
    ("mailto:a@x", {"BENCH_SMTP_HOST": "h", "BENCH_SMTP_STARTTLS": "maybe"},
     "BENCH_SMTP_STARTTLS='maybe' is not a yes/no value"),
    ("mailto:a@x", {"BENCH_SMTP_HOST": "h", "BENCH_SMTP_FROM": "bench"},
     "BENCH_SMTP_FROM='bench' is not a mail address"),
])
def test_bad_target_is_one_line(target: str, env: dict[str, str], expected: str) -> None:
    with pytest.raises(InputError) as info:
        check_target(target, env)
    assert expected in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(InputError):
        send(target, ALERTS, environ=env)   # send checks too, before any connection


def test_good_targets_pass() -> None:
    check_target("https://hooks.example.org/services/T/B/x", {})
    check_target("HTTP://127.0.0.1:8080", {})
    check_target("mailto:a@example.org,b@example.org", {"BENCH_SMTP_HOST": "smtp.example.org",
                                                        "BENCH_SMTP_STARTTLS": "yes"})


def test_shown_leaves_out_secrets() -> None:
    assert shown("https://user:pw@hooks.slack.com/services/T0/B0/XyZ") == \
        "https://hooks.slack.com/…"
    assert shown("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert shown("mailto:a@x") == "mailto:a@x"
