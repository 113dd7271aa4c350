"""The mpi4py CI pipeline (seed 000): build cython and mpi4py from their sdists against the
machine's MPI compiler wrapper → sanity (print rank, output matched against a pattern) →
deploy to ``release_root/<build id>`` (+ ``latest``) → OSU with the deployed build → PDF."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runners.config.checks import as_int
from runners.kinds.base import Prepared, Submit
from runners.kinds.osu import Osu, OsuBench
from runners.stages.ci import build_from_source, deploy, sanity


@dataclass
class Mpi4pyCiBench(OsuBench):
    """Build mpi4py from source → sanity (print rank) → deploy → OSU → PDF summary (seed 000)."""

    name: str = "mpi4py_ci"
    kind: str = "mpi4py_ci"
    env: str = "mpi4py_ci"
    trials: Any = 1
    sanity_ranks: int = 2
    sanity_pattern: str = "Hello from rank 1 of 2"
    release_root: str = "${cache_root}/releases"
    build_timeout_s: float = 1800.0


class Mpi4pyCi(Osu):
    """Build, sanity, deploy, then the OSU tests with the deployed build."""

    name = "mpi4py_ci"
    schema = Mpi4pyCiBench

    def validate(self) -> None:
        """The OSU settings, and at least 2 ranks for the sanity check."""
        super().validate()
        as_int(self.bench.sanity_ranks, "bench.sanity_ranks", 2)

    def prepare(self, submit: Submit, out_dir: Path) -> Prepared:
        """build → sanity → deploy; the trials use the deployed build."""
        bench, machine, logs = self.bench, self.cfg.machine, out_dir / "stages"
        f_build = submit(build_from_source, str(self.env_spec()), str(machine.env_root),
                         str(logs / "build"), float(bench.build_timeout_s))
        prefix = self.launch(int(bench.sanity_ranks), "{env}")
        f_sanity = submit(sanity, f_build, prefix, str(bench.sanity_pattern),
                          str(logs / "sanity"), float(bench.timeout_s))
        f_deploy = submit(deploy, f_sanity, str(bench.release_root), str(logs / "deploy"))
        return Prepared([("build", f_build), ("sanity", f_sanity), ("deploy", f_deploy)],
                        f_deploy)

    def plan(self, out_dir: Path) -> list[str]:
        """build, sanity and deploy."""
        bench = self.bench
        return [f"build   {self.env_spec()}: venv --copies; pip install <binary>; pip download "
                "--no-binary :all: <source>; pip install --no-build-isolation <sdists> "
                "(MPICC=<env>/bin/mpicc)",
                f"sanity  print_rank.py on {bench.sanity_ranks} ranks, output must match "
                f"{bench.sanity_pattern!r}",
                f"deploy  copy the build to {bench.release_root}/<build id>"]


KIND = Mpi4pyCi
