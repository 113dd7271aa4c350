"""References learnt from history (``bench regress --against reference``, ``bench baseline
show|accept|ignore``) and notifications of new regressions, over real SQLite stores."""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from runners.analysis.reference import agree, half_width, walk, widening
from runners.analysis.stats import noise_level
from runners.cli.baseline import add_parser as add_baseline
from runners.cli.regress import add_parser as add_regress
from runners.tracking.query import StoreReader
from runners.tracking.tracker import Tracker
from tests.support import HttpReceiver, SmtpSink, one_error

T0 = int(pd.Timestamp("2026-01-01T00:00:00Z").value // 10**6)
HASH = "0123456789abcdef"


def bench(*argv: str) -> int:
    """Run ``bench regress`` / ``bench baseline`` in-process."""
    p = argparse.ArgumentParser()
    v = p.add_subparsers(dest="verb")
    add_regress(v)
    add_baseline(v)
    args = p.parse_args(list(argv))
    return int(args.func(args))


def add_series(tracker: Tracker, experiment: str, values: list[float],
               tags: Mapping[str, str] | None = None) -> list[str]:
    """FINISHED runs one minute apart of one series (metric ``t.median``); ids, oldest first."""
    client = tracker.online.client
    ids = []
    for i, v in enumerate(values):
        run = client.create_run(tracker.experiment_id(experiment), start_time=T0 + 60_000 * i,
                                tags={"machine": "local", "fs": "tmpfs", "config.hash": HASH,
                                      "git.commit": f"{i:040d}", "fom": "t.median",
                                      "unit.t": "s", **(tags or {})})
        client.log_metric(run.info.run_id, "t.median", v, timestamp=T0 + 60_000 * i)
        client.set_terminated(run.info.run_id, end_time=T0 + 60_000 * i + 1000)
        ids.append(str(run.info.run_id))
    return ids


def tags_of(uri: str, run_id: str) -> dict[str, str]:
    return dict(StoreReader(uri).client.get_run(run_id).data.tags)


def all_tags(uri: str, ids: list[str]) -> dict[str, dict[str, str]]:
    return {i: tags_of(uri, i) for i in ids}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """20 runs at 1.0 with 1 % noise, then 3 at 1.15: one series of experiment ``step``."""
    db = tmp_path_factory.mktemp("baseline") / "mlflow.db"
    rng = np.random.default_rng(3)
    values = list(1.0 + 0.01 * rng.standard_normal(20)) + [1.15, 1.16, 1.14]
    return db, add_series(Tracker(f"sqlite:///{db}"), "step", values)


@pytest.fixture()
def store(template: tuple[Path, list[str]], tmp_path: Path) -> tuple[str, list[str]]:
    """A copy of the template store for one test."""
    db, ids = template
    for part in db.parent.glob("mlflow.db*"):   # with the WAL of the open store
        shutil.copy(part, tmp_path / part.name)
    return f"sqlite:///{tmp_path}/mlflow.db", ids


SERIES = f"step/local/tmpfs/{HASH}/t.median"

# ------------------------------------------------------------------ pure functions


def test_band_is_the_median_and_a_widened_noise_band_with_a_floor() -> None:
    points = [1.0, 1.1, 0.9, 1.0, 1.05]
    band = walk([*points, 1.0], k=3.0, min_effect=0.0)
    assert band.median == 1.0 and band.high - 1.0 == pytest.approx(
        widening(3.0, 5) * noise_level(points)) and 1.0 - band.low == pytest.approx(
        band.high - 1.0)
    assert half_width(noise_level(points), 1.0, 5, 3.0, 0.0) == pytest.approx(
        band.high - 1.0)
    assert widening(3.0, 5) > widening(3.0, 20) > 3.0 > widening(3.0, 10_000) - 0.01
    assert half_width(0.0, 2.0, 5, 3.0, 0.02) == pytest.approx(0.04)
    flat = walk([2.0] * 6, k=3.0, min_effect=0.02)
    assert (flat.median, flat.low, flat.high) == pytest.approx((2.0, 1.96, 2.04))


def test_walk_flags_a_single_new_run_and_keeps_flagging_an_unaccepted_step() -> None:
    rng = np.random.default_rng(1)
    base = list(100 * (1 + 0.02 * rng.standard_normal(20)))
    assert walk(base).status == "no change"
    one = walk([*base, 112.0])
    assert one.status == "regression" and one.first_excursion == 20 and one.n_latest == 1
    assert one.effect == pytest.approx((112.0 - one.median) / one.median)
    # ten more points at the new level never become the reference by themselves
    later = walk([*base, *[112.0 + 0.1 * i for i in range(10)]])
    assert later.status == "regression" and later.first_excursion == 20
    assert later.n_reference == walk(base).n_reference and abs(later.median - 100) < 2
    assert walk([*base, 88.0]).status == "improvement"
    assert walk([*base, 88.0], "higher").status == "regression"
    assert walk(base[:4]).status == "not enough data"


def test_a_long_unaccepted_step_does_not_creep_into_the_reference() -> None:
    """80 runs 20 % (about 6 sigmas) up: now and then one falls inside the band's edge;
    it must not end the excursion and drag the reference up one point at a time."""
    rng = np.random.default_rng(12)
    values = [*(1 + 0.03 * rng.standard_normal(40)), *(1.2 + 0.036 * rng.standard_normal(80))]
    verdict = walk(values)
    assert verdict.status == "regression" and verdict.first_excursion == 40
    assert abs(verdict.median - 1.0) < 0.03 and verdict.n_latest == 80


def test_walk_leaves_a_lone_spike_out_of_the_reference() -> None:
    rng = np.random.default_rng(2)
    base = list(1 + 0.01 * rng.standard_normal(20))
    verdict = walk([*base[:10], 5.0, *base[10:]])
    assert verdict.status == "no change" and verdict.high < 1.1


def test_walk_false_alarms_on_noise_are_rare() -> None:
    """Seeded: 400 series of 30 points of 2 % noise, the newest judged each time."""
    rng = np.random.default_rng(20261202)
    alarms = sum(walk(list(1 + 0.02 * rng.standard_normal(30))).status == "regression"
                 for _ in range(400))
    assert alarms <= 4


def test_agree_needs_the_reruns_to_reproduce_the_step() -> None:
    reference = list(1 + 0.01 * np.random.default_rng(4).standard_normal(20))
    ok, text = agree(reference, [1.2, 1.21, 1.19], "lower", 0.2)
    assert ok and "p=" in text
    ok, text = agree(reference, [1.0, 1.01, 0.99], "lower", 0.2)
    assert not ok and "-" in text or "+0" in text
    assert agree(reference, [1.2, 1.0], "lower", 0.2)[0] is False    # two must both agree
    assert agree(reference, [1.2, 1.19], "lower", 0.2)[0] is True
    assert agree(reference, [0.8, 0.79, 0.81], "higher", -0.2)[0] is True
    assert agree(reference, [], "lower", 0.2) == (False, "no rerun finished")

# ------------------------------------------------------------------ the verbs


def test_regress_against_reference_judges_the_newest_run(
        store: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    uri, ids = store
    assert bench("regress", "--tracking-uri", uri, "--against", "reference") == 1
    out = capsys.readouterr().out
    assert "regressions:" in out and "1 series checked, 1 regressions" in out
    assert ids[20][:12] in out                      # the first run outside the band
    assert tags_of(uri, ids[-1])["regress.t.median"] == "regression"


def test_baseline_show_lists_the_reference(store: tuple[str, list[str]],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    uri, _ = store
    assert bench("baseline", "show", "--tracking-uri", uri, "--format", "csv") == 0
    table = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))
    [row] = table.to_dict("records")
    assert row["series"] == SERIES and row["status"] == "regression"
    assert abs(row["reference"] - 1.0) < 0.01 and row["low"] < 1.0 < row["high"] < 1.1
    assert row["points"] == 20 and row["latest"] == pytest.approx(1.15)


def test_accept_makes_the_new_level_the_reference(store: tuple[str, list[str]],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    uri, ids = store
    assert bench("baseline", "accept", "--tracking-uri", uri, "--series", "step/*",
                 "--reason", "new compiler, intended") == 0
    assert f"{SERIES}: accepted from run {ids[20]}" in capsys.readouterr().out
    note = json.loads(tags_of(uri, ids[20])["baseline.accepted.t.median"])
    assert note["reason"] == "new compiler, intended" and note["by"] and note["at"]
    # three points since the accepted step: too few for a verdict either way, so exit 0
    assert bench("regress", "--tracking-uri", uri, "--against", "reference") == 0
    assert bench("regress", "--tracking-uri", uri) == 0
    assert "0 regressions" in capsys.readouterr().out
    Tracker(uri)  # more runs at the new level give it a band of its own
    more = add_series(Tracker(uri), "step", [1.15] * 3 + [1.16, 1.14, 1.15])
    del more
    assert bench("baseline", "show", "--tracking-uri", uri, "--format", "csv") == 0
    show = capsys.readouterr().out
    assert "accepted by" in show and "new compiler, intended" in show


def test_ignore_silences_a_series_until_it_expires(store: tuple[str, list[str]],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    uri, ids = store
    assert bench("baseline", "ignore", "--tracking-uri", uri, "--series", SERIES,
                 "--reason", "node swap", "--days", "2") == 0
    note = json.loads(tags_of(uri, ids[-1])["baseline.ignored.t.median"])
    assert note["reason"] == "node swap" and note["until"] > note["at"]
    capsys.readouterr()
    assert bench("regress", "--tracking-uri", uri, "--against", "reference", "--all") == 0
    out = capsys.readouterr().out
    assert "1 ignored" in out and "ignored" in out
    assert tags_of(uri, ids[-1])["regress.t.median"] == "ignored"
    expired = dict(note, until="2020-01-01T00:00:00+00:00")
    Tracker(uri).set_tags(ids[-1], {"baseline.ignored.t.median": json.dumps(expired)})
    assert bench("regress", "--tracking-uri", uri, "--against", "reference") == 1


@pytest.mark.parametrize(("argv", "words"), [
    (["baseline", "accept", "--series", SERIES], "accept needs --reason"),
    (["baseline", "accept", "--reason", "x"], "accept needs --series"),
    (["baseline", "accept", "--series", "nope/*", "--reason", "x"], "no series matches"),
    (["baseline", "accept", "--series", SERIES, "--reason", "x", "--from", "f00"],
     "run f00 is not a FINISHED run of series"),
    (["baseline", "ignore", "--series", SERIES, "--reason", "x", "--until", "2001-01-01"],
     "is in the past"),
    (["baseline", "ignore", "--series", SERIES, "--reason", "x", "--days", "0"],
     "--days '0' is not a whole number >= 1"),
    (["baseline", "show", "--series", "x/y"], "no series matches 'x/y'"),
    (["baseline", "show", "--min-effect", "5"], "--min-effect 5 means 500%"),
    (["regress", "--confirm", "0"], "--confirm '0' is not a whole number >= 1"),
    (["regress", "--confirm", "-2"], "--confirm '-2' is not a whole number >= 1"),
    (["regress", "--against", "median"], "--against 'median' is not valid"),
    (["regress", "--notify", "ftp://example.org/hook"], "is not supported; give an http"),
    (["regress", "--notify", "mailto:ops@example.org"], "BENCH_SMTP_HOST"),
])
def test_bad_input_is_one_line_and_writes_nothing(
        store: tuple[str, list[str]], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, argv: list[str], words: str) -> None:
    uri, ids = store
    monkeypatch.delenv("BENCH_SMTP_HOST", raising=False)
    before = all_tags(uri, ids)
    verb = argv[:2] if argv[0] == "baseline" else argv[:1]
    assert bench(*verb, "--tracking-uri", uri, *argv[len(verb):]) == 2
    assert words in one_error(capsys)
    assert all_tags(uri, ids) == before


def test_notify_sends_each_new_regression_once(
        store: tuple[str, list[str]], http_receiver: HttpReceiver,
        capsys: pytest.CaptureFixture[str]) -> None:
    uri, ids = store
    argv = ["regress", "--tracking-uri", uri, "--against", "reference", "--notify",
            http_receiver.url, "--report-url", "https://ci.example.org/report/"]
    assert bench(*argv) == 1
    [request] = http_receiver.requests
    body = request.json()
    assert SERIES.split("/t.median")[0].split("/")[0] in body["text"]
    assert "+15" in body["text"] and "https://ci.example.org/report/" in body["text"]
    [alert] = body["alerts"]
    assert alert["run_after"] == ids[20] and alert["metric"] == "t.median"
    assert alert["unit"] == "s" and alert["commit_after"] == f"{20:040d}"
    assert json.loads(tags_of(uri, ids[20])["notified.t.median"])["targets"] == [
        http_receiver.url]
    # the next night: the same step, nothing sent, and the exit code still says regression
    add_series(Tracker(uri), "step", [1.15])
    assert bench(*argv) == 1
    assert len(http_receiver.requests) == 1
    assert "no new regression to send" in capsys.readouterr().err


def test_notify_mail_and_a_receiver_that_is_down(
        store: tuple[str, list[str]], smtp_sink: SmtpSink,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    uri, ids = store
    for key, value in smtp_sink.env.items():
        monkeypatch.setenv(key, value)
    down = "http://127.0.0.1:9/hook"     # the discard port: nothing listens there
    assert bench("regress", "--tracking-uri", uri, "--against", "reference",
                 "--notify", f"mailto:ops@example.org,{down}") == 1
    [mail] = smtp_sink.mails
    assert mail.recipients == ["ops@example.org"] and "regression" in mail.message["Subject"]
    err = capsys.readouterr().err
    assert sum("warning:" in line and "127.0.0.1:9" in line for line in err.splitlines()) == 1
    assert "notified 1 new regression(s) to mailto:ops@example.org" in err
