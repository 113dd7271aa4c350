"""Redaction of secrets (runners/tracking/redact.py) and its use by the Tracker before
logging."""

from __future__ import annotations

from pathlib import Path

import pytest

from runners.tracking.redact import REDACTED, Redactor, compile_patterns, secret_env, secret_key


@pytest.mark.parametrize("key", ["MLFLOW_TRACKING_PASSWORD", "GITHUB_TOKEN", "env.API_TOKEN",
                                 "aws.secret_access_key", "apiKey", "machine.env.DB_PASSWD",
                                 "SSH_CREDENTIALS", "tags.authToken", "env.APIKEY",
                                 "machine.env.SECRET_KEY_BASE", "machine.env.AWS_ACCESS_KEY_ID"])
def test_secret_looking_keys(key: str) -> None:
    assert secret_key(key)


@pytest.mark.parametrize("key", ["config.hash", "tokenizer", "monkey", "keyboard_layout",
                                 "PATH", "bench.params.seconds", "SSH_AUTH_SOCK",
                                 "bench.key_size", "bench.max_tokens", "cache.keys",
                                 "bench.params.sort_key_order", "tokenizer.name"])
def test_ordinary_keys(key: str) -> None:
    assert not secret_key(key)


@pytest.mark.parametrize(("name", "secret"), [
    ("SECRET_KEY_BASE", True), ("AWS_ACCESS_KEY_ID", True), ("GITHUB_TOKEN", True),
    ("MLFLOW_TRACKING_PASSWORD", True), ("MY_SERVICE_API_TOKEN", True), ("HOME", False),
    ("MONKEY_PATCH", False), ("KEYBOARD", False), ("PATH", False)])
def test_secret_environment_variables(name: str, secret: bool) -> None:
    assert secret_env(name) is secret


def test_extra_patterns_and_a_bad_one() -> None:
    assert secret_key("SITE_COOKIE", compile_patterns(["cookie"]))
    assert not secret_key("SITE_COOKIE")
    with pytest.raises(ValueError, match="redact pattern '\\[' is not a regular expression"):
        compile_patterns(["["])


def test_mapping_redacts_keys_and_scrubs_their_values_elsewhere() -> None:
    red = Redactor(environ={"MY_API_TOKEN": "env-secret-123", "HOME": "/root"})
    out = red.mapping({"machine.env.DB_PASSWORD": "config-secret-456",
                       "note": "uses env-secret-123 and config-secret-456", "short.key": "abc",
                       "hash": "deadbeef"})
    assert out["machine.env.DB_PASSWORD"] == REDACTED
    assert out["short.key"] == REDACTED
    assert out["note"] == f"uses {REDACTED} and {REDACTED}"
    assert out["hash"] == "deadbeef"
    assert red.text("abc is too short to scrub") == "abc is too short to scrub"
    env = red.environment({"MY_API_TOKEN": "env-secret-123", "HOME": "/root"})
    assert env == {"HOME": "/root", "MY_API_TOKEN": REDACTED}


def test_files_and_directories_get_redacted_copies(tmp_path: Path) -> None:
    red = Redactor(environ={"SERVICE_SECRET": "s3cr3t-value-789"})
    (tmp_path / "d" / "sub").mkdir(parents=True)
    clean = tmp_path / "d" / "clean.txt"
    clean.write_bytes(b"nothing here \xff")
    dirty = tmp_path / "d" / "sub" / "dirty.log"
    dirty.write_bytes(b"\xfe token=s3cr3t-value-789 end")
    scratch: list[str] = []
    files = red.files([str(clean), str(dirty)], scratch)
    assert files[0] == str(clean)
    assert Path(files[1]).name == "dirty.log" and files[1] != str(dirty)
    assert Path(files[1]).read_bytes() == b"\xfe token=[redacted] end"
    assert dirty.read_bytes() == b"\xfe token=s3cr3t-value-789 end"      # the original stays
    copy = Path(red.directory(str(tmp_path / "d"), scratch))
    assert copy != tmp_path / "d" and copy.name == "d"
    assert (copy / "sub" / "dirty.log").read_bytes() == b"\xfe token=[redacted] end"
    assert (copy / "clean.txt").read_bytes() == b"nothing here \xff"
    assert Redactor(environ={}).directory(str(tmp_path / "d"), []) == str(tmp_path / "d")


def test_urls_config_files_and_binaries(tmp_path: Path) -> None:
    red = Redactor(environ={})
    assert red.text("db at postgresql+psycopg2://mlflow:pw1@127.0.0.1:5432/x, see http://a/b") \
        == f"db at postgresql+psycopg2://mlflow:{REDACTED}@127.0.0.1:5432/x, see http://a/b"
    assert red.environment({"DATABASE_URL": "https://u:hunter@h/"}) == {
        "DATABASE_URL": f"https://u:{REDACTED}@h/"}
    cfg = tmp_path / "config.yaml"
    cfg.write_text("machine:\n  env:\n    DB_PASSWORD: abc\n    HOME: /root\n"
                   "bench:\n  key_size: 16\n")
    over = tmp_path / "overrides.yaml"
    over.write_text("- +machine.env.DB_PASSWORD=abc\n- bench.trials=3\n"
                    "- a=1,machine.env.X_TOKEN=t1,b=2\n")
    png = tmp_path / "plot.png"
    png.write_bytes(b"\x89PNG\0\0 https://u:pw@h/ " + b"s3cr3t-value-0001")
    red.remember(["s3cr3t-value-0001"])
    out = red.files([str(cfg), str(over), str(png)], [])
    assert out[2] == str(png)                       # binary: left alone
    import yaml

    assert yaml.safe_load(Path(out[0]).read_text()) == {
        "machine": {"env": {"DB_PASSWORD": REDACTED, "HOME": "/root"}},
        "bench": {"key_size": 16}}
    assert yaml.safe_load(Path(out[1]).read_text()) == [
        f"+machine.env.DB_PASSWORD={REDACTED}", "bench.trials=3",
        f"a=1,machine.env.X_TOKEN={REDACTED},b=2"]


def test_the_tracker_redacts_before_logging(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    from runners.tracking.tracker import Tracker

    monkeypatch.setenv("PLANTED_TOKEN", "planted-token-value")
    uri = f"sqlite:///{tmp_path}/m.db"
    tracker = Tracker(uri, str(tmp_path / "art"), redact=["cookie"])
    run_id = tracker.start_run("redact", "r", {"site.cookie": "c00kie-value-1", "a": "1"},
                               {"note": "has planted-token-value"})
    log = tmp_path / "out.log"
    log.write_text("c00kie-value-1 and planted-token-value\n")
    tracker.log_artifacts(run_id, [str(log)], "logs")
    tracker.fail_run(run_id, "bench", "error", "failed with planted-token-value")
    run = MlflowClient(uri).get_run(run_id)
    assert run.data.params == {"site.cookie": REDACTED, "a": "1"}
    assert run.data.tags["note"] == f"has {REDACTED}"
    assert run.data.tags["failure.message"] == f"failed with {REDACTED}"
    art = Path(MlflowClient(uri).download_artifacts(run_id, "logs/out.log", str(tmp_path / "d")))
    assert art.read_text() == f"{REDACTED} and {REDACTED}\n"
    assert log.read_text() == "c00kie-value-1 and planted-token-value\n"


def test_a_bad_redact_pattern_is_one_line_exit_2(run_py, store) -> None:  # noqa: ANN001
    proc = run_py("bench=sleep", *store.overrides(), "redact=['[']")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: redact pattern '[' is not a regular expression (unterminated character set at "
        "position 0); e.g. redact=[cookie] or redact=['MYSITE_.*']"]
    assert not store.db.exists()
