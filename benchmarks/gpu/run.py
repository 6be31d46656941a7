"""The orchestrator of `python -m benchmarks.gpu`: parts in their own processes, each within its time limit.

The parent process only starts children, enforces limits and writes the results: every part is a child process
(pytest, `benchmarks.gpu.ops`, `benchmarks.gpu.pipeline`) with PYTHONPATH = the checkout (the package need not be
installed), SSNI_CUDA_BACKEND set per part (kernels are registered at import), and a hard limit: the child is
told its time (`--seconds`, minus GRACE_S) to plan within, and is killed with its process group at the limit.
A part that cannot get MIN_PART_S of the run's budget is skipped with the reason.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.gpu import correctness, results
from benchmarks.gpu.extensions import CudaExtensionBuild, library_status, stop
from benchmarks.gpu.profiles import PART_ORDER, Profile
from benchmarks.gpu.timing import Deadline

REPO = Path(__file__).resolve().parents[2]
GRACE_S = 10.0  # between the time a child plans for and its hard limit
MIN_PART_S = 15.0  # a part gets at least this, or is skipped
REPORT_RESERVE_S = 5.0  # kept for writing the results
TAIL_LINES = 25  # of a failed child's output, printed and recorded
BUILD_WAIT_S = 60.0  # the longest the CUDA C++ parts wait for the background build (started at the beginning)


@dataclass
class Part:
    kind: str
    variant: str
    status: str = "skipped"  # ok | failed | timed out | skipped
    seconds: float | None = None
    limit_s: float | None = None
    note: str = ""
    output_tail: list[str] = field(default_factory=list)  # of a child that failed or was stopped
    data: dict | None = field(default=None, repr=False)

    def add_note(self, text: str) -> None:
        self.note = f"{self.note}; {text}" if self.note else text


class Runner:
    def __init__(self, profile: Profile, out_dir: Path, command: str):
        self.profile = profile
        self.command = command
        self.started = time.monotonic()
        self.deadline = Deadline(profile.budget_s)
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M")
        self.stem = out_dir / f"gpu-{profile.name}-{stamp}"
        self.log = self.stem.with_suffix(".log")
        self.work = Path(tempfile.mkdtemp(prefix="ssni-gpu-"))
        self.parts: list[Part] = []
        self.build: CudaExtensionBuild | None = None
        self.extensions: dict[str, str] = {}

    # ------------------------------------------------------------------------------------------------ children
    def env(self, backend: str = "triton") -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
        env.update(SSNI_CUDA_BACKEND=backend, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
        if self.profile.device == "cpu":
            # The dry run: one thread (a shared CPU's busy-waiting OpenMP threads are slower than one), and
            # torch.compile calls return the function itself (the plumbing runs, inductor's compilation does not).
            env.update(OMP_NUM_THREADS="1", TORCH_COMPILE_DISABLE="1")
        return env

    def run_child(self, part: Part, command: list[str], env: dict[str, str]) -> int | None:
        """Run `command` within part.limit_s (output appended to the log); its exit code, None when stopped."""
        with self.log.open("a") as log:
            log.write(f"\n===== {part.kind} ({part.variant}): {shlex.join(command)}\n")
            log.flush()
            start_offset = log.tell()
            start = time.monotonic()
            process = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                code = process.wait(timeout=part.limit_s)
            except subprocess.TimeoutExpired:
                code = None
                stop(process)
            except BaseException:  # an interruption of this process: do not leave the part running
                stop(process)
                raise
            part.seconds = time.monotonic() - start
        if code != 0:
            with self.log.open() as log:
                log.seek(start_offset)
                tail = log.read().splitlines()[-TAIL_LINES:]
            print("\n".join(f"    | {line}" for line in tail), flush=True)
            part.output_tail = tail
        return code

    def allot(self, part: Part) -> bool:
        """Set the part's limit from its own and the run's time; False (part skipped) when too little is left."""
        own = self.profile.limit(part.kind, part.variant)
        left = self.deadline.left() - REPORT_RESERVE_S
        limit = min(own if own is not None else float("inf"), left)
        if limit < MIN_PART_S:
            part.note = f"only {max(left, 0):.0f} s of the run's budget left"
            return False
        part.limit_s = None if limit == float("inf") else limit
        return True

    def planning_seconds(self, part: Part) -> list[str]:
        return [] if part.limit_s is None else ["--seconds", f"{part.limit_s - GRACE_S:.0f}"]

    # ------------------------------------------------------------------------------------------------ parts
    def correctness(self, part: Part) -> None:
        junit = self.work / f"junit-{part.variant}.xml"
        tests = self.profile.tests[part.variant]
        code = self.run_child(
            part, correctness.pytest_command(tests, junit, self.profile.device == "cuda"), self.env(part.variant)
        )
        if code is None:
            part.status = "timed out"
            part.add_note(f"stopped at {part.limit_s:.0f} s")
            return
        if not junit.is_file():
            part.status = "failed"
            part.add_note(f"pytest exited with {code} and wrote no report")
            return
        part.data = correctness.summarize(junit)
        failed = part.data["failures"] + part.data["errors"]
        part.status = "ok" if code == 0 and failed == 0 else "failed"
        part.add_note(f"{part.data['passed']} passed, {failed} failed, {part.data['skipped']} skipped")

    def json_child(self, part: Part, module: str, arguments: list[str], env: dict[str, str]) -> None:
        out = self.work / f"{part.kind}-{part.variant}.json".replace(" ", "_").replace(",", "")
        command = [sys.executable, "-m", module, "--profile", self.profile.name, *arguments, "--out", str(out)]
        code = self.run_child(part, command + self.planning_seconds(part), env)
        part.data = json.loads(out.read_text()) if out.is_file() else None
        if code is None:
            part.status = "timed out"
            part.add_note(f"stopped at {part.limit_s:.0f} s (what it measured before is kept)")
        else:
            part.status = "ok" if code == 0 and part.data is not None else "failed"
        if part.data and part.data.get("error"):
            part.add_note(part.data["error"])
        skipped = results.skipped_for_time(part.data or {})
        if skipped:
            part.add_note(f"{len(skipped)} measurements skipped for time")

    def start_build(self) -> None:
        """Start the CUDA C++ extension build in the background when it is needed and possible."""
        self.extensions = library_status()
        if self.profile.device != "cuda" or not self.profile.build_extensions:
            self.extensions["build"] = f"not attempted ({self.profile.name} profile)"
            return
        if self.extensions["_C_cuda"] == "loaded":
            self.extensions["build"] = "not needed (_C_cuda loads)"
            return
        import torch

        major, minor = torch.cuda.get_device_capability()
        self.build = CudaExtensionBuild(self.work / "build", self.log, f"{major}.{minor}")
        self.build.start()
        self.extensions["build"] = "started in the background"

    def cuda_cpp_ready(self, part: Part) -> bool:
        """Whether the CUDA C++ kernels can be used (joining the build first); else the reason in part.note."""
        if self.profile.device != "cuda":
            part.note = "needs a CUDA device"
            return False
        if self.build is not None:
            wait = min(BUILD_WAIT_S, self.deadline.left() - REPORT_RESERVE_S - MIN_PART_S)
            installed, what = self.build.finish(timeout=wait)
            self.extensions["build"] = what
            self.build = None
            self.extensions["_C_cuda"] = "built and installed" if installed else "not built"
        if self.extensions["_C_cuda"] not in ("loaded", "built and installed"):
            part.note = f"ssni_kernels._C_cuda unavailable: {self.extensions['build']}"
            return False
        return True

    def run_part(self, kind: str, variant: str, kernels: str = "fused") -> Part:
        part = Part(kind, variant if kernels == "fused" else f"{variant}, reference kernels")
        self.parts.append(part)
        if variant == "cuda" and not self.cuda_cpp_ready(part):
            return part
        if kind == "correctness" and variant not in self.profile.tests:
            part.note = f"no tests in the {self.profile.name} profile"
            return part
        if not self.allot(part):
            return part
        print(f"[{self.elapsed():4.0f} s] {kind} ({part.variant}), limit {_limit(part.limit_s)}", flush=True)
        if kind == "correctness":
            self.correctness(part)
        elif kind == "ops":
            env = {**self.env(variant), "SSNI_CHECK_VALUES": "0"}  # see benchmarks/gpu/ops.py
            self.json_child(part, "benchmarks.gpu.ops", ["--backend", variant], env)
        else:
            self.json_child(part, "benchmarks.gpu.pipeline", ["--model", variant, "--kernels", kernels], self.env())
        print(f"[{self.elapsed():4.0f} s]   {part.status} in {part.seconds:.0f} s. {part.note}", flush=True)
        return part

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # ------------------------------------------------------------------------------------------------ run
    def run(self) -> dict:
        self.stem.parent.mkdir(parents=True, exist_ok=True)
        self.log.write_text(f"{self.command}\n")
        try:
            self.start_build()
            for kind, variant in PART_ORDER:
                for kernels in self.profile.kernels if kind == "pipeline" else ("fused",):
                    self.run_part(kind, variant, kernels)
        finally:
            if self.build is not None:  # no part needed it, or this run was interrupted: do not leave it running
                stop(self.build.process)
                self.extensions["build"] = "stopped: no part needed it"
        data = self.collect()
        shutil.rmtree(self.work, ignore_errors=True)
        return data

    def collect(self) -> dict:
        from benchmarks import report

        ops_parts = [p for p in self.parts if p.kind == "ops" and p.data]
        ops = {"rows": [], "copy_gbps_by_numel": {}, "skipped": [], "compile_s": {}}
        for p in ops_parts:
            ops["rows"] += p.data["rows"]
            ops["copy_gbps_by_numel"].update(p.data["copy_gbps"])
            ops["skipped"] += [f"{p.variant}: {s}" for s in p.data["skipped"]]
            ops["compile_s"].update(p.data["compile_s"])
        pipeline = {p.variant: p.data for p in self.parts if p.kind == "pipeline" and p.data}
        notes = {"ops_value_checks": "off while timing ops (SSNI_CHECK_VALUES=0), on end to end"}
        if self.profile.device == "cpu":
            notes["torch_compile"] = "disabled in the dry run (TORCH_COMPILE_DISABLE=1): compiled = eager"
        compared = "see each section; ops: " + report.REFERENCE_NOTE
        env = report.environment(self.profile.device, compared=compared, driver=_nvidia_driver(), **notes)
        data = {
            "profile": self.profile.name,
            "command": self.command,
            "environment": env,
            "budget_s": self.profile.budget_s,
            "seconds": self.elapsed(),
            "extensions": self.extensions,
            "parts": [{k: v for k, v in asdict(p).items() if k != "data"} for p in self.parts],
            "correctness": {p.variant: p.data for p in self.parts if p.kind == "correctness" and p.data},
            "ops": ops,
            "pipeline": pipeline,
            "headline": results.headline(pipeline),
        }
        self.stem.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
        self.stem.with_suffix(".md").write_text(results.markdown(data))
        return data


def _limit(seconds: float | None) -> str:
    return "none" if seconds is None else f"{seconds:.0f} s"


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
