"""singan as a package (issue 32): pyproject.toml in step with the requirements files; a wheel
built offline from the checkout's files holds singan/ and SIFID/ only; installed into a fresh
virtual environment (which sees the installed dependencies), it trains, loads and samples from
an empty folder outside the checkout, and its `singan` command runs the scripts; an editable
install (pip install -e .) imports from the source."""
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import singan
from conftest import ROOT, smooth_image, write_image

tomllib = pytest.importorskip("tomllib")

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = {"studio": "requirements-studio.txt", "ray": "requirements-ray.txt",
          "extra": "requirements-extra.txt", "video": "requirements-video.txt",
          "tensorboard": "requirements-tensorboard.txt",
          "notebook": "requirements-notebook.txt"}
# what only the tests use (requirements.txt's runners, setuptools for building the wheel here,
# the studio's browser driver): the `test` extra, not the others
TEST_ONLY = {"pytest", "pytest-xdist", "pytest-timeout", "hypothesis", "setuptools", "playwright"}


def requirements(name: str) -> list:
    """The requirement lines of a requirements file, comments left out."""
    lines = (line.split("#")[0].strip() for line in (ROOT / name).read_text().splitlines())
    return [line for line in lines if line]


def project_name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0).lower().replace("_", "-")


def for_users(lines: list) -> list:
    return [line for line in lines if project_name(line) not in TEST_ONLY]


def test_pyproject_lists_what_the_requirements_files_list():
    extras = PYPROJECT["optional-dependencies"]
    assert PYPROJECT["dependencies"] == for_users(requirements("requirements.txt"))
    for extra, name in EXTRAS.items():
        assert extras[extra] == for_users(requirements(name)), extra
    every = [line for name in ("requirements.txt", *EXTRAS.values())
             for line in requirements(name)]
    assert extras["test"] == [line for line in every if project_name(line) in TEST_ONLY]
    assert PYPROJECT["scripts"] == {"singan": "singan.cli.commands:main"}
    assert PYPROJECT["dynamic"] == ["version"]               # singan.__version__, read by setuptools


# ---- the wheel, built and installed -----------------------------------------------------------

def run(*args, cwd, env=None, timeout=300):
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert proc.returncode == 0, f"{args}\n{proc.stdout}\n{proc.stderr}"
    return proc


def clean_env() -> dict:
    """This environment without a path to the checkout: only what is installed is imported."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return dict(env, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """The checkout's files as a fresh clone has them (tracked ones, and new ones git does not
    ignore): no build/, *.egg-info or caches of an earlier build."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    source = tmp_path_factory.mktemp("clone")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    return source


def make_venv(folder: Path) -> Path:
    """A virtual environment that sees this one's packages (--system-site-packages); pip comes
    from this environment (pip --python), so the environment needs none of its own."""
    run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", folder,
        cwd=folder.parent)
    return folder / "bin" / "python"


@pytest.fixture(scope="module")
def wheel(source, tmp_path_factory):
    """`pip wheel --no-deps .` without the network (--no-index) or an isolated build
    environment: setuptools from this one."""
    dist = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "-q", "-w", dist, ".", cwd=source)
    wheels = list(dist.glob("*.whl"))
    assert [w.name for w in wheels] == [f"singan-{singan.__version__}-py3-none-any.whl"]
    return wheels[0]


def test_the_wheel_holds_the_two_packages_only(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    info = f"singan-{singan.__version__}.dist-info"
    assert {name.split("/")[0] for name in names} == {"singan", "SIFID", info}
    assert all(name.endswith(".py") for name in names if not name.startswith(info)), names
    for module in ("singan/__main__.py", "singan/cli/commands.py", "singan/cli/options.py",
                   "singan/apps/animation.py", "singan/methods/consingan/train.py",
                   "singan/studio/page.py", "singan/cluster/many.py", "SIFID/sifid.py",
                   "SIFID/sifid_score.py"):
        assert module in names
    metadata = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
    assert f"Version: {singan.__version__}" in metadata
    assert "Requires-Dist: torch>=2.1" in metadata
    for extra in (*EXTRAS, "test"):
        assert f"Provides-Extra: {extra}" in metadata
    entry_points = zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    assert "singan = singan.cli.commands:main" in entry_points


INSTALLED = """
import sys
from pathlib import Path

import torch
import SIFID
import singan

venv = Path(sys.argv[1]).resolve()
for package in (singan, SIFID):
    assert Path(package.__file__).resolve().is_relative_to(venv), package.__file__
assert singan.__version__ == sys.argv[2], singan.__version__
torch.set_num_threads(1)
config = singan.SinGANConfig(max_size=24, min_size=19, niter=3)
model = singan.train_model("tiny.png", config, "model", device="cpu", show_progress=False)
model = singan.load_model("model")
samples = model.sample(3, generator=torch.Generator().manual_seed(0))
print("scales", model.num_scales, "samples", tuple(samples.shape))
"""


@pytest.mark.slow
def test_the_installed_wheel_runs_from_an_empty_folder(wheel, tmp_path):
    python = make_venv(tmp_path / "venv")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
        "-q", wheel, cwd=tmp_path)
    empty = tmp_path / "elsewhere"
    write_image(empty / "tiny.png", smooth_image(20, 24))
    env = clean_env()

    proc = run(python, "-c", INSTALLED, tmp_path / "venv", singan.__version__, cwd=empty,
               env=env)
    assert "scales 3 samples (3, 3, 20, 24)" in proc.stdout, proc.stdout

    # the `singan` command: random_samples.py's equivalent, on that model
    command = tmp_path / "venv" / "bin" / "singan"
    proc = run(command, "random_samples", "--model_dir", "model", "--input_name", "tiny.png",
               "--num_samples", "2", "--device", "cpu", "--manualSeed", "0", cwd=empty, env=env)
    samples = empty / "Output" / "RandomSamples" / "tiny" / "gen_start_scale=0"
    assert sorted(p.name for p in samples.iterdir()) == ["0.png", "1.png"], proc.stdout
    usage = run(python, "-m", "singan", "--help", cwd=empty, env=env).stdout
    assert all(name in usage for name in ("main_train", "random_samples", "animation", "sr"))
    bad = subprocess.run([command, "random_samples", "--num_samples", "0"], cwd=empty,
                         env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("singan random_samples: error: argument --num_samples")


@pytest.mark.slow
def test_an_editable_install_imports_from_the_source(source, tmp_path):
    python = make_venv(tmp_path / "venv")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps",
        "--no-build-isolation", "--no-index", "-q", "-e", source, cwd=tmp_path)
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    proc = run(python, "-c", "import singan, SIFID; print(singan.__file__, SIFID.__file__)",
               cwd=empty, env=clean_env())
    files = [Path(p) for p in proc.stdout.split()]
    assert files == [source / "singan" / "__init__.py", source / "SIFID" / "__init__.py"]
    assert (tmp_path / "venv" / "bin" / "singan").is_file()
