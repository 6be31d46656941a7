"""The README's "Using it" section: every Python snippet runs as written, from a directory outside the repository.

All snippets run in one fresh interpreter (one torch import), each in its own namespace, with the current directory
a temporary folder: a snippet that only works from the repository root (a relative path) fails here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DRIVER = """
import runpy, sys
for number, path in enumerate(sys.argv[1:]):
    runpy.run_path(path, run_name="__main__")
    print(f"snippet {number} ok", flush=True)
"""


def using_it_snippets() -> list[str]:
    """The ```python blocks of the README's "## Using it" section, in order."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Using it\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```python\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)


def test_the_section_shows_evaluate_and_interop():
    code = "\n".join(using_it_snippets())
    for needed in ("ssni.evaluate(", ".as_classifier(", "torchattacks.PGD(", "autoattack_rand(", "K.reverse_step("):
        assert needed in code


def test_every_snippet_runs_from_another_directory(tmp_path):
    snippets = using_it_snippets()
    assert len(snippets) >= 4
    paths = []
    for number, code in enumerate(snippets):
        path = tmp_path / f"snippet_{number}.py"
        path.write_text(code, encoding="utf-8")
        paths.append(str(path))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-c", DRIVER, *paths], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert [line for line in run.stdout.splitlines() if line.endswith(" ok")] == [
        f"snippet {n} ok" for n in range(len(snippets))
    ]
