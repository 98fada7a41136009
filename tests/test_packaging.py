"""The package builds as a wheel that installs into a fresh virtual environment."""

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: build with the setuptools already installed (CI reaches only the
    # package registries, and this keeps the test quick).
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation",
                    "--outdir", str(out), str(ROOT)], check=True, capture_output=True)
    (path,) = out.glob("latentaudit-*.whl")
    return path


def _shipped_data_files() -> list[str]:
    """Every data file git tracks inside the package that is not Python source: the demo
    cohort and every shipped weight folder (config, safetensors, split)."""
    tracked = subprocess.run(["git", "ls-files", "src/latentaudit"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.split()
    return sorted(p.removeprefix("src/") for p in tracked
                  if not p.endswith((".py", ".pyi")) and Path(ROOT, p).is_file())


def test_wheel_contains_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "latentaudit/py.typed" in names
    assert "latentaudit/__init__.py" in names
    shipped = _shipped_data_files()
    assert "latentaudit/data/_files/demo_cohort.npz" in shipped
    weights = [p for p in shipped if "/_weights/" in p and p.endswith(".safetensors")]
    assert weights, "the shipped demo weights are not tracked by git"
    missing = [p for p in shipped if p not in names]
    assert not missing, f"tracked package data missing from the wheel: {missing}"


def test_wheel_installs_into_fresh_venv(wheel, tmp_path):
    env_dir = tmp_path / "fresh"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # The dependencies (torch is several GB) come from the running environment through a
    # .pth file; latentaudit itself only from the wheel.
    site = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # (every site-packages folder of the running interpreter: an environment that itself
    # reaches its packages through a .pth file passes them on too)
    folders = dict.fromkeys([sysconfig.get_paths()["purelib"],
                             *(p for p in sys.path if p.endswith("site-packages"))])
    Path(site, "deps.pth").write_text("".join(f"{folder}\n" for folder in folders))
    # --ignore-installed: the development install is visible through deps.pth (and
    # PYTHONPATH), and pip would otherwise call the wheel "already installed".
    clean = {**os.environ, "PYTHONPATH": ""}
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                    "--ignore-installed", str(wheel)], check=True, capture_output=True,
                   env=clean)
    # The shipped demo cohort and DAE weights load from the installed wheel and embed.
    code = ("import latentaudit as la, os; "
            "from latentaudit.encoders.dae import DAEEncoder; "
            "cohort = la.datasets.load_demo_cohort(); "
            "z = DAEEncoder.from_pretrained('demo').encode(cohort.images[:2]); "
            "print(os.path.dirname(la.__file__)); print(la.NiftiDataset.__name__); "
            "print(tuple(z.shape))")
    result = subprocess.run([str(python), "-c", code], capture_output=True,
                            text=True, cwd=tmp_path, env=clean)
    assert result.returncode == 0, result.stderr[-2000:]
    location, name, shape = result.stdout.replace(", ", ",").split()
    assert Path(location).is_relative_to(env_dir), f"imported from {location}, not the wheel"
    assert name == "NiftiDataset"
    assert shape == "(2,512)"
