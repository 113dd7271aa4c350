"""What the tests share: the project root, a temporary MLflow store, the environment of
``run.py`` subprocesses, config composition, the real MLflow server (``cluster/mlflow/``)
a TCP proxy that can be cut between a driver and that server, and the local receivers of
notifications (an HTTP webhook receiver, an SMTP sink).

Fixtures live in ``tests/conftest.py``; test modules import helpers from here only, never
from one another.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import os
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
DATA = TESTS / "data"
GOLDEN = TESTS / "golden"
CONF = ROOT / "conf"
SCRIPTS = ROOT / "cluster" / "mlflow"
#: ``run_py(*args, timeout=..., check=...)``: ``python run.py <args>`` in a subprocess.
RunPy = Callable[..., subprocess.CompletedProcess]


@dataclass
class Store:
    """A temporary SQLite MLflow store."""

    uri: str
    artifacts: Path
    db: Path

    def overrides(self) -> list[str]:
        """Hydra overrides that point run.py at this store."""
        return [f"tracking.uri={self.uri}", f"tracking.artifact_root={self.artifacts}"]

    def client(self) -> MlflowClient:
        """An MlflowClient on this store (mlflow is imported only now)."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri)

    def runs(self, experiment: str = "mpi4py_import") -> list:
        """All runs of an experiment (newest first); [] if it does not exist."""
        client = self.client()
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            return []
        return list(client.search_runs([exp.experiment_id], order_by=["start_time DESC"]))

    def artifact_paths(self, run_id: str, path: str = "") -> list[str]:
        """Every artifact file of a run (relative paths), walking its folders."""
        client = self.client()
        out: list[str] = []
        for item in client.list_artifacts(run_id, path or None):
            out.extend(self.artifact_paths(run_id, item.path) if item.is_dir else [item.path])
        return out


def child_env() -> dict[str, str]:
    """The environment for run.py subprocesses: the venv's bin/ first on PATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("HYDRA_FULL_ERROR", None)
    return env


SLURM = ROOT / "cluster" / "slurm"


def slurm_state_dir() -> Path:
    """The local Slurm cluster's state directory (``cluster/slurm/env.sh``)."""
    out = subprocess.run(["bash", "-c", f". {SLURM}/env.sh && echo $BENCH_SLURM_DIR"],
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


@contextlib.contextmanager
def slurm_cluster(nodes: int) -> Iterator[str]:
    """The local Slurm cluster with ``nodes`` nodes for a tier of tests; afterwards as it was
    (stopped if it was not up; a developer's own cluster back to its node count).

    A cluster that cannot start fails the tier (never skips it).  Yields start.sh's output.
    """
    was_up = subprocess.run(["bash", str(SLURM / "status.sh")], capture_output=True,
                            timeout=60, check=False).returncode == 0
    count = slurm_state_dir() / "nodes"
    before = count.read_text().strip() if was_up and count.is_file() else "1"
    start = subprocess.run(["bash", str(SLURM / "start.sh"), "--nodes", str(nodes)],
                           capture_output=True, text=True, timeout=600, check=False)
    if start.returncode != 0:
        pytest.fail(f"cluster/slurm/start.sh --nodes {nodes} failed:\n{start.stdout}\n"
                    f"{start.stderr}")
    try:
        yield start.stdout
    finally:
        argv = [str(SLURM / "start.sh"), "--nodes", before] if was_up else [
            str(SLURM / "stop.sh")]
        done = subprocess.run(["bash", *argv], capture_output=True, text=True, timeout=600,
                              check=False)
        assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"


def require_tool(name: str) -> str:
    """The path of a host tool (``cluster/host-packages.sh`` installs them).

    Missing, it fails the test when ``CI`` is set (CI must run everything) and skips it
    elsewhere, naming how to install it.
    """
    import shutil

    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is missing; install it with `bash cluster/host-packages.sh` as root"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Headless Chromium (Debian's) with a fresh profile and no background networking."""
    import tempfile

    exe = require_tool("chromium")
    with tempfile.TemporaryDirectory(prefix="bench-chromium-") as profile:
        return subprocess.run([exe, "--headless=new", "--no-sandbox", "--disable-gpu",
                               "--disable-dev-shm-usage", "--no-first-run", "--disable-quic",
                               "--disable-background-networking", "--disable-component-update",
                               "--disable-sync", f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The single stderr line of a bad-input call (nothing on stdout)."""
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def check_golden(path: Path, text: str) -> None:
    """Compare generated text with its golden file.

    With ``BENCH_UPDATE_GOLDEN=1`` a missing or different golden file is re-recorded and
    the test fails, naming it (review the change with ``git diff``, then run again without
    the variable); an unchanged one passes.  Never compares a file with itself.
    """
    old = path.read_text() if path.is_file() else None
    if os.environ.get("BENCH_UPDATE_GOLDEN") == "1" and old != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        pytest.fail(f"re-recorded {path}: review it with git diff, then run the tests again "
                    "without BENCH_UPDATE_GOLDEN")
    assert old is not None, f"no golden file {path}; record it with BENCH_UPDATE_GOLDEN=1"
    assert text == old, f"{path.name} differs from its golden file {path}"


def make(*overrides: str) -> DictConfig:
    """Compose the primary config with overrides, as run.py would."""
    from hydra import compose, initialize_config_dir

    from runners.config.register import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        return compose(config_name="config", overrides=list(overrides))


# ------------------------------------------------------- the MLflow server (cluster/mlflow/)

def script(name: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run one of cluster/mlflow/*.sh."""
    return subprocess.run(["bash", str(SCRIPTS / name)], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


def start(env: dict[str, str]) -> str:
    """start.sh (may install PostgreSQL, hence the long timeout); the tracking URI."""
    proc = script("start.sh", env, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"cluster/mlflow/start.sh failed ({proc.returncode}):\n"
                    f"{proc.stdout}\n{proc.stderr}")
    uris = [line.split("=", 1)[1] for line in proc.stdout.splitlines()
            if line.startswith("export MLFLOW_TRACKING_URI=")]
    assert len(uris) == 1, proc.stdout
    return uris[0]


@dataclass
class Server:
    """The running server and where its state lives."""

    uri: str
    state: Path
    pg_port: int
    env: dict[str, str]
    runs: dict[str, int] = field(default_factory=dict)  # run id -> expected metric points

    def client(self) -> MlflowClient:
        """An MlflowClient on the server."""
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri)

    def psql(self, sql: str) -> str:
        """Run SQL in the `mlflow` database as the postgres superuser, over the unix socket."""
        pgdata = (self.state / "pgdata").resolve()
        version = (pgdata / "PG_VERSION").read_text().strip()
        proc = subprocess.run(
            ["runuser", "-u", "postgres", "--", f"/usr/lib/postgresql/{version}/bin/psql",
             "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", str((self.state / "pgrun").resolve()),
             "-p", str(self.pg_port), "-d", "mlflow", "-c", sql],
            capture_output=True, text=True, timeout=60, cwd="/")
        assert proc.returncode == 0, f"psql failed: {proc.stderr}"
        return proc.stdout.strip()


# ---------------------------------------------------------------- a network fault, on demand

class Proxy:
    """Forward ``127.0.0.1:<port>`` to ``target`` while up.

    Parameters
    ----------
    target_host, target_port : str, int
        Where connections are forwarded.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def uri(self) -> str:
        """The proxy's URL."""
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> Proxy:
        """Listen (on the same port as before, if it was up already once)."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def down(self) -> None:
        """Stop listening and cut every open connection."""
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    server.close()
                    return
                self._conns += [client, server]
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 1.0)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peer[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.close()


@dataclass
class Received:
    """One request an :class:`HttpReceiver` got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class HttpReceiver:
    """A webhook receiver on 127.0.0.1 (an ephemeral port) that records every request.

    It answers ``replies`` in order (HTTP statuses; 200 once they are used up), each
    after waiting up to ``delay`` seconds (to make a client time out).  ``url`` is a
    webhook-like address with a secret-looking path.  Use it as a context manager.
    """

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.replies: list[int] = []
        self.delay = 0.0
        self.release = threading.Event()   # set at exit: a delayed reply ends at once
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the name http.server calls
                size = int(self.headers.get("Content-Length") or 0)
                owner.requests.append(Received(self.command, self.path,
                                               dict(self.headers.items()),
                                               self.rfile.read(size)))
                if owner.delay:
                    owner.release.wait(owner.delay)
                status = owner.replies.pop(0) if owner.replies else 200
                with contextlib.suppress(OSError):   # a client that gave up has gone
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass   # no request lines in the test output

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/hooks/T0/B0/secret-token``."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0/B0/secret-token"

    def __enter__(self) -> HttpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@dataclass
class Mail:
    """One mail an :class:`SmtpSink` accepted: envelope sender and recipients, the
    parsed message."""

    sender: str
    recipients: list[str]
    message: EmailMessage


class SmtpSink:
    """A real SMTP server (``aiosmtpd``) on 127.0.0.1, an ephemeral port, that keeps
    what it accepts in ``mails``.

    ``replies``: answers to DATA in order (e.g. ``"451 4.3.0 try again later"``; then
    ``250 OK``); ``refuse``: recipients answered ``550``; ``credentials``: if set, the
    only ``(user, password)`` AUTH accepts (every attempt is kept in ``logins``).  It
    offers AUTH without TLS and no STARTTLS.  ``env`` holds the ``BENCH_SMTP_*``
    variables that point at it.  Use it as a context manager.
    """

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        # Imported here: only the tests of notifications need aiosmtpd (a dev extra).
        import asyncio

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.mails: list[Mail] = []
        self.replies: list[str] = []
        self.refuse: set[str] = set()
        self.logins: list[tuple[str, str]] = []
        sink = self

        class Handler:
            async def handle_RCPT(self, server: Any, session: Any, envelope: Any,
                                  address: str, options: list[str]) -> str:
                if address in sink.refuse:
                    return "550 5.1.1 no such user here"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server: Any, session: Any,
                                  envelope: Any) -> str:
                if sink.replies:
                    return sink.replies.pop(0)
                raw = envelope.content.replace(b"\r\n", b"\n")   # as a mailbox would keep it
                parsed = email.message_from_bytes(raw, policy=email.policy.default)
                assert isinstance(parsed, EmailMessage)
                sink.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), parsed))
                return "250 OK"

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                         auth_data: Any) -> AuthResult:
            login = (auth_data.login.decode(), auth_data.password.decode())
            sink.logins.append(login)
            # handled=False: the server answers 235 or 535 itself
            return AuthResult(success=credentials is None or login == credentials,
                              handled=False, auth_data=auth_data)

        class Ephemeral(Controller):
            """Listens on port 0; the port the system chose is read before the check
            that the server answers."""

            def _trigger_server(self) -> None:
                assert isinstance(self.server, asyncio.Server)
                self.port = self.server.sockets[0].getsockname()[1]
                super()._trigger_server()

        self.controller = Ephemeral(Handler(), hostname="127.0.0.1", port=0,
                                    authenticator=authenticate, auth_require_tls=False,
                                    ready_timeout=10)

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.controller.port)

    @property
    def env(self) -> dict[str, str]:
        """``BENCH_SMTP_HOST`` and ``BENCH_SMTP_PORT`` pointing at this sink."""
        return {"BENCH_SMTP_HOST": "127.0.0.1", "BENCH_SMTP_PORT": str(self.port)}

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


@dataclass
class SiteAgent:
    """A site's agent started with ``bench site start`` for a test (its files under
    ``sites``, its store given by ``overrides``); :meth:`stop` ends it, also when killed."""

    name: str
    sites: Path
    overrides: list[str]
    pid: int = 0

    def bench(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        """``bench site <args> <name> <overrides>``."""
        argv = [str(Path(sys.executable).parent / "bench"), "site", *args, self.name,
                *self.overrides]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env=child_env(), cwd=ROOT)

    def ls(self, *args: str) -> subprocess.CompletedProcess:
        """``bench site ls --tracking-uri <its store> <args>``."""
        uri = next(o.partition("=")[2] for o in self.overrides if o.startswith("tracking.uri="))
        return subprocess.run([str(Path(sys.executable).parent / "bench"), "site", "ls",
                               "--tracking-uri", uri, *args], capture_output=True, text=True,
                              timeout=120, env=child_env(), cwd=ROOT)

    def start(self) -> subprocess.CompletedProcess:
        """Start it and remember its pid (the start must succeed)."""
        proc = self.bench("start")
        assert proc.returncode == 0, f"bench site start failed:\n{proc.stdout}\n{proc.stderr}"
        self.pid = int((self.sites / self.name / "agent.pid").read_text().split()[0])
        return proc

    def log(self) -> str:
        """The agent's log."""
        path = self.sites / self.name / "agent.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop it (SIGTERM via ``bench site stop``; SIGKILL its group if that fails)."""
        import psutil

        if self.pid and psutil.pid_exists(self.pid):
            proc = self.bench("stop", "--timeout", "60")
            if proc.returncode != 0 and psutil.pid_exists(self.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, 9)


# ---------------------------------------------------------------- the store as a job queue

def queued_run(uri: str, site: str = "here") -> str:
    """A run queued (SCHEDULED) for ``site`` in the store at ``uri``."""
    from runners.tracking.queue import QUEUED, set_status
    from runners.tracking.writer import MlflowWriter

    writer = MlflowWriter(uri)
    run_id = writer.start_run("queue", "q", {"a": "1"}, {"site": site, "site.attempt": "1"})
    set_status(writer, run_id, QUEUED)
    return run_id


def _race(uri: str, run_id: str, agent: str, start: Any, out: Any) -> None:
    """One racing agent: connect, wait for the start signal, claim."""
    from runners.tracking.queue import claim
    from runners.tracking.writer import MlflowWriter

    writer = MlflowWriter(uri)
    writer.client.get_run(run_id)       # connected before the race
    start.wait(60)
    try:
        out.put((agent, claim(writer, run_id, "site.claim.1", agent)))
    except Exception as exc:    # noqa: BLE001 - e.g. "database is locked": not a claim
        out.put((agent, f"{type(exc).__name__}: {exc}"))


def claim_race(uri: str, run_id: str, racers: int = 6) -> dict[str, object]:
    """``racers`` processes claim one queued run at the same moment; what each got
    (True: it holds the claim; False: another does; else the error)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(uri, run_id, f"agent-{i}", start, out))
             for i in range(racers)]
    for p in procs:
        p.start()
    start.set()
    results = dict(out.get(timeout=180) for _ in procs)
    for p in procs:
        p.join(60)
    return results


def slurm_env() -> dict[str, str]:
    """The environment with the project-local SLURM_CONF (for squeue, sacct, ...)."""
    out = subprocess.run(["bash", "-c", f". {ROOT}/cluster/slurm/env.sh && echo $SLURM_CONF"],
                         capture_output=True, text=True, check=True)
    return dict(os.environ, SLURM_CONF=out.stdout.strip())
