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


def test_wheel_contains_package_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "latentaudit/py.typed" in names
    assert "latentaudit/__init__.py" in names
    assert any(n.startswith("latentaudit/data/_files/") for n in names), \
        "the demo cohort's data file must ship inside the wheel"


def test_wheel_installs_into_fresh_venv(wheel, tmp_path):
    env_dir = tmp_path / "fresh"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # The dependencies (torch is several GB) come from the running environment through a
    # .pth file; latentaudit itself only from the wheel.
    site = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True)
    code = ("import latentaudit, os; from latentaudit import NiftiDataset; "
            "print(os.path.dirname(latentaudit.__file__)); print(NiftiDataset.__name__)")
    result = subprocess.run([str(python), "-c", code], check=True, capture_output=True,
                            text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""})
    location, name = result.stdout.split()
    assert Path(location).is_relative_to(env_dir), f"imported from {location}, not the wheel"
    assert name == "NiftiDataset"
