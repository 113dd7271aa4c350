"""``bench regress``: regression verdicts over the history of every benchmark series.

A series is one metric of one (experiment, machine, fs, ``config.hash``) of FINISHED runs,
ordered by start time, judged by :func:`runners.analysis.series.regress_frame`; the
regressions are printed and each verdict is written back as tags on the newest run of its
series.  By default the metrics judged are each benchmark's figures of merit.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from runners.analysis.merits import merit_metrics, only, union
from runners.analysis.regress import judge
from runners.analysis.series import regress_report, verdict_tags
from runners.analysis.table import (
    FORMATS,
    available_metrics,
    label,
    listing,
    parse_list,
    render,
    resolve_metric,
)
from runners.analysis.verdicts import AGAINST
from runners.cli.confirm import confirm
from runners.cli.options import (
    add_selection,
    choice,
    fail,
    load_runs,
    number_option,
    whole_option,
)
from runners.errors import InputError
from runners.tracking.tracker import Tracker

if TYPE_CHECKING:
    import pandas as pd


def min_effect_option(text: str | None) -> float | None:
    """``--min-effect`` as a fraction (``0.05`` or ``5%``); None if unset.

    Raises
    ------
    InputError
        Out of [0, 10], or a bare number above 1 (``5`` would mean 500 %).
    """
    value = number_option("--min-effect", text, 0.0, 10.0, low_inclusive=True, percent=True)
    if value is not None and value > 1 and not str(text).strip().endswith("%"):
        raise InputError(f"--min-effect {text} means {value:.0%}; give a fraction or a "
                         "percentage, e.g. --min-effect 0.05 or 5%")
    return value


def judge_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``judge`` keyword arguments the user set (the rest keep judge's defaults).

    Raises
    ------
    InputError
        On a value out of range or options that do not fit together.
    """
    options: dict[str, Any] = {
        "min_effect": min_effect_option(args.min_effect),
        "noise_factor": number_option("--noise-factor", args.noise_factor, 0.0, 10.0,
                                      low_inclusive=True, example="1.25"),
        "alpha": number_option("--alpha", args.alpha, 0.0, 0.5),
        "min_points": whole_option("--min-points", args.min_points, 2),
        "latest": whole_option("--latest", args.latest, 2),
        "baseline": whole_option("--baseline", args.baseline, 2),
        "max_points": whole_option("--max-points", args.max_points, 2),
    }
    options = {k: v for k, v in options.items() if v is not None}
    try:
        judge([1.0], **options)
    except ValueError:
        points = options.get("min_points", 3)
        raise InputError(f"--latest and --baseline must be >= --min-points ({points}); "
                         f"e.g. --min-points {points} --latest {max(points, 5)}") from None
    return options


def reference_options(args: argparse.Namespace, options: dict[str, Any]) -> dict[str, Any]:
    """The :func:`runners.analysis.reference.walk` keywords of ``--against reference``."""
    out: dict[str, Any] = {
        "window": whole_option("--window", args.window, 2),
        "k": number_option("--sigmas", args.sigmas, 0.0, 100.0),
        "min_points": options.get("min_points"),
        "min_effect": options.get("min_effect"),
    }
    return {k: v for k, v in out.items() if v is not None}


def judged_metrics(args: argparse.Namespace, frame: pd.DataFrame
                   ) -> tuple[list[str], dict[str, list[str]] | None]:
    """The metrics to judge: ``--metric``, else each experiment's figures of merit
    (returned per experiment too, None with ``--metric``).

    Raises
    ------
    InputError
        On an unknown metric, or runs without a figure of merit and no ``--metric``.
    """
    if args.metric:
        wanted = [m for item in args.metric for m in parse_list(item)]
        return list(dict.fromkeys(label(resolve_metric(frame, m)) for m in wanted)), None
    per_experiment = merit_metrics(frame)
    metrics = union(per_experiment)
    if not metrics:
        raise InputError(f"the matching runs have no figure of merit and no *.median "
                         f"metric; give --metric, one of "
                         f"{listing(available_metrics(frame), 8)}")
    return metrics, per_experiment


def cmd_regress(args: argparse.Namespace) -> int:
    """Find performance regressions in the history of every benchmark series.

    A series is one metric of one (experiment, machine, fs, config.hash) over FINISHED
    runs, ordered by start time, from its newest `bench baseline accept` on. With --against
    step (the default) each is judged by runners.analysis.regress.judge_frame: the points
    after the most recent step against those before it, a change needing both a
    Mann-Whitney p < --alpha and a relative change of the medians >= max(--min-effect,
    --noise-factor x the series' relative noise). With --against
    reference the newest run is judged at once against the series' reference band
    (the median of the last --window accepted runs +- --sigmas noise sigmas; see `bench
    baseline show`). The better direction is the direction.<metric> tag (default lower). A series
    silenced by `bench baseline ignore` is listed as ignored. --confirm N reruns each
    suspected regression N times (tagged confirm.of=<run id>) and keeps only those the
    reruns reproduce; --notify posts each new regression once to a webhook or mails it.
    Regressions are listed with the range where they appeared (time, commit, run ids);
    the verdict of every series is written as tags regress.<metric> (regression,
    improvement, ok, refuted, ignored, not enough data) and regress.<metric>.change_pct on
    its newest run unless --dry-run. Exit 1 if any series regressed, else 0.
    """
    from runners.analysis.verdicts import judge_all

    try:
        fmt = choice("--format", args.format, FORMATS)
        against = choice("--against", args.against, AGAINST)
        options = judge_options(args)
        ref_options = reference_options(args, options)
        count = whole_option("--confirm", args.confirm, 1)
        targets = [t for item in args.notify or () for t in parse_list(item)]
        if targets:  # http.client and email only when they are used
            from runners.publish.notify import check_target

            for target in targets:
                check_target(target, os.environ)
        reader, frame, _ = load_runs(args, "FINISHED", status_option=False)
        metrics, per_experiment = judged_metrics(args, frame)
    except InputError as exc:
        return fail(str(exc))
    result, long = judge_all(frame, metrics, against, options, ref_options)
    if per_experiment is not None:
        result = only(result, per_experiment).reset_index(drop=True)
    if count:
        if args.dry_run:
            print(f"dry run: {int((result['status'] == 'regression').sum())} suspected "
                  f"regression(s) not rerun", file=sys.stderr)
        else:
            result = confirm(result, long, reader, args.tracking_uri, count,
                             options.get("alpha", 0.05))
    counts = result["status"].value_counts()
    regressions = int(counts.get("regression", 0))
    shown = result if args.all else result[result["status"] == "regression"]
    report = regress_report(shown, full=fmt == "csv", with_status=args.all)
    lines = []
    if len(shown):
        title = "series" if args.all else "regressions"
        lines.append(render(report, fmt) if fmt == "csv" else f"{title}:\n{render(report, fmt)}")
        if fmt != "csv" and "confirmation" in shown.columns:
            lines += [f"  {r.metric} {r.machine}/{r.fs}: {r.confirmation}\n"
                      for r in shown.itertuples() if r.confirmation]
    elif fmt != "csv":
        lines.append("no regressions\n")
    summary = (f"{len(result)} series checked, {regressions} regressions, "
               f"{int(counts.get('not enough data', 0))} not enough data, "
               f"{int(counts.get('improvement', 0))} improvements")
    for status in ("refuted", "ignored"):
        if counts.get(status, 0):
            summary += f", {int(counts[status])} {status}"
    if args.dry_run:
        summary += "; dry run: no tags written"
    else:
        tags = verdict_tags(result)
        writer = Tracker(args.tracking_uri)
        for run_id, values in tags.items():
            writer.set_tags(run_id, values)
        summary += f"; verdict tags written on {len(tags)} runs"
    sys.stdout.write("".join(lines))
    print(summary, file=sys.stderr if fmt == "csv" else sys.stdout)
    if targets:
        from runners.cli.alerts import notify_new

        notify_new(result, long, frame, targets, args)
    return 1 if regressions else 0


def add_parser(verbs: argparse._SubParsersAction) -> None:
    """Register ``bench regress``."""
    doc = cmd_regress.__doc__ or ""
    r = verbs.add_parser("regress", help=doc.splitlines()[0], description=doc)
    add_selection(r)
    r.add_argument("--metric", action="append", metavar="NAME",
                   help="metric to judge, repeatable or comma-separated; a base name means "
                        "its median (default: the figures of merit of each benchmark)")
    r.add_argument("--min-effect", metavar="X",
                   help="floor of the minimum relative change of the medians, as a fraction "
                        "or a percentage (default: 1%%); the change must be at least "
                        "max(floor, --noise-factor x the series' relative noise); with "
                        "--against reference, the narrowest half-width of the band "
                        "(default: 2%%)")
    r.add_argument("--noise-factor", metavar="K",
                   help="minimum effect in units of the series' own noise (default: 1.25); "
                        "0 uses --min-effect alone (--noise-factor 0 --min-effect 5%% is "
                        "the fixed rule of before)")
    r.add_argument("--alpha", metavar="P",
                   help="significance level of the Mann-Whitney test (default: 0.05)")
    r.add_argument("--min-points", metavar="N",
                   help="fewest points per window; a series needs twice as many to be "
                        "judged (default: 3)")
    r.add_argument("--latest", metavar="N",
                   help="points of the latest window when no step is detected (default: 5)")
    r.add_argument("--baseline", metavar="N",
                   help="at most this many points before the change as baseline "
                        "(default: all of its level)")
    r.add_argument("--max-points", metavar="N",
                   help="only the newest N points of a series are analysed (default: 1000)")
    r.add_argument("--against", default="step", metavar="{" + ",".join(AGAINST) + "}",
                   help="judge the points after the latest step (step) or the newest run "
                        "against the reference band learnt from history (reference); "
                        "default %(default)s")
    r.add_argument("--window", metavar="N",
                   help="--against reference: accepted runs the band is computed from "
                        "(default: 20)")
    r.add_argument("--sigmas", metavar="K",
                   help="--against reference: half-width of the band in noise sigmas "
                        "(default: 3.5)")
    r.add_argument("--confirm", metavar="N",
                   help="rerun each suspected regression N times (same machine, fs and "
                        "config, tagged confirm.of) and keep it only if the reruns agree")
    r.add_argument("--notify", action="append", metavar="TARGET",
                   help="send each new regression once: an http(s) webhook URL (JSON with a "
                        "Slack-compatible text) or mailto:ADDR (SMTP from BENCH_SMTP_HOST); "
                        "repeatable")
    r.add_argument("--report-url", metavar="URL",
                   help="link to the report, put in the notifications")
    r.add_argument("--all", action="store_true",
                   help="list every series with its status, not only the regressions")
    r.add_argument("--dry-run", action="store_true", help="judge and print; write no tags")
    r.set_defaults(func=cmd_regress)
