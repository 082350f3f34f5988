"""pyproject.toml, environment.yml, the README and .ci/run agree with each other."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_installs_the_project_from_conda_forge_only():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"][0] == "conda-forge" and set(env["channels"]) <= {"conda-forge", "nodefaults"}
    conda_deps = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_deps = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    names = {re.split(r"[<>=! ]", d)[0] for d in conda_deps}
    assert {"python", "pip"} <= names
    # Every dependency of pyproject reaches the conda environment through the editable install of .[dev].
    assert pip_deps == ['-e ".[dev]"'] or pip_deps == ["-e .[dev]"]
    # And the Python floor agrees.
    py = next(d for d in conda_deps if d.startswith("python"))
    assert py.replace("python", "") == PYPROJECT["project"]["requires-python"]


def test_dependencies_have_minimums_not_pins():
    deps = PYPROJECT["project"]["dependencies"]
    assert any(d.startswith("torch>=") for d in deps), "torch must be a minimum so Colab keeps its CUDA build"
    for dep in deps:
        assert "==" not in dep, f"{dep}: state a minimum (>=), not a pin"
    dev = PYPROJECT["project"]["optional-dependencies"]["dev"]
    for name in ("pytest", "nbval", "jupyterlab", "ipykernel", "ruff"):
        assert any(d.startswith(name) for d in dev), f"dev extra lacks {name}"


def test_every_installed_dependency_satisfies_pyproject():
    from importlib.metadata import version

    from packaging.requirements import Requirement

    reqs = PYPROJECT["project"]["dependencies"] + [
        d for d in PYPROJECT["project"]["optional-dependencies"]["offline"]
    ]
    for line in reqs:
        req = Requirement(line)
        assert req.specifier.contains(version(req.name), prereleases=True), f"{req.name} {version(req.name)} ∉ {req}"


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    ci_cmd = [ln.strip() for ln in ci.splitlines() if ln.strip().startswith("pytest")]
    assert ci_cmd == ["pytest && OMP_NUM_THREADS=1 ATEN_CPU_CAPABILITY=default pytest -n 2 --dist loadfile notebooks"]
    assert f"\n{ci_cmd[0]}\n" in readme, "the README shows CI's test command on a line of its own"
    assert "torch==2.13.0" in ci


def test_cli_help_works():
    out = subprocess.run([sys.executable, "-m", "llmguide.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "quickstart" in out.stdout


def test_no_public_name_shadows_a_submodule():
    import importlib
    import inspect

    import llmguide

    for path in (ROOT / "llmguide").glob("*.py"):
        if path.stem.startswith("_"):
            continue
        importlib.import_module(f"llmguide.{path.stem}")
        attr = getattr(llmguide, path.stem)
        assert inspect.ismodule(attr), f"llmguide.{path.stem} is {attr!r}, not the module: `import llmguide.{path.stem} as m` breaks"


def test_the_passive_openmp_policy_is_only_set_inside_a_jupyter_kernel():
    # Busy-waiting OpenMP threads starve a kernel's own threads, but make a plain script faster.
    code = "import llmguide, os; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "JPY_PARENT_PID")}
    script = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    kernel = subprocess.run([sys.executable, "-c", code], env={**env, "JPY_PARENT_PID": "1"}, capture_output=True,
                            text=True, check=True)
    chosen = subprocess.run([sys.executable, "-c", code], env={**env, "JPY_PARENT_PID": "1",
                            "OMP_WAIT_POLICY": "ACTIVE"}, capture_output=True, text=True, check=True)
    assert (script.stdout.strip(), kernel.stdout.strip(), chosen.stdout.strip()) == ("None", "PASSIVE", "ACTIVE")
