"""Every shell and Python snippet of README.md runs, as written, in a fresh shell of a copy of this checkout.

`test_every_readme_snippet_is_run` (default suite) fails when the README gains a snippet that no test here runs, or
loses one that a test still names. Each group test runs its README commands verbatim, in README order, through
`bash` after the README's own `source .venv/bin/activate`, in a copy of the checkout (its `../shared/data` the
shared data) with HOME in a temporary folder, so `~/.cache/...` paths and the Hugging Face cache are temporary
too. Training recipes the README runs are shrunk to one step in the copy, so the commands stay verbatim; Hub
snippets run against a local olah Hub serving the copy's releases.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_training
import yaml
from fixtures import shared_file

from ltzoo import hub_server

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(bash|python)\n(.*?)^```", re.MULTILINE | re.DOTALL)
TIMEOUT = 900
tiny_cifar_root = test_training.tiny_cifar_root  # the fixture: real training archive, 200 real test images

# Which test runs each README snippet: a bash block counts per command (continuation lines joined), a Python block
# as a whole (keyed by its first line).
RUNS = {
    "bash scripts/quickstart.sh": "setup",
    "bash scripts/setup.sh dev && .venv/bin/python -m pytest -q": "setup",
    "source .venv/bin/activate": "activate",
    "import ltzoo, timm, torch": "python_use",
    "ltzoo list '*cifar10_lt' --pretrained": "cli",
    "ltzoo info resnext50_smcl_imagenet_lt": "cli",
    "ltzoo validate resnet32_ce_cifar10_lt --pretrained --local-hub releases --plot ce.png --json ce.json": "cli",
    "ltzoo serve-hub releases/": "serve_hub",
    "accelerate launch -q training/train.py --config training/configs/resnet32_ce_cifar10_lt.if50.yaml epochs=1 "
    "data.subset=1024 run_dir=~/.cache/ltzoo/runs/trial": "rebuild",
    "accelerate launch -q training/train.py --config training/configs/resnet32_ce_cifar10_lt.if50.yaml --resume auto":
        "rebuild",
    "accelerate launch -q training/train.py --config training/configs/resnet32_ce_cifar10_lt.if50.yaml --release "
    "--resume auto": "rebuild",
    "accelerate launch -q training/train.py --config training/configs/resnet32_smcl_cifar10_lt.if100.yaml "
    "method.saliency=opencv_finegrained run_dir=~/.cache/ltzoo/runs/smcl_saliency_opencv "
    "release_dir=results/ablations/saliency_opencv": "ablation",
    "python training/sync_releases.py": "ablation",
    "ltzoo validate resnet32_ce_cifar10_lt.if100 --local-hub releases --test-dist all --plot ce.png": "evaluation",
    "ltzoo validate resnet32_ce_cifar10_lt.if100 --local-hub releases --sweep logit_adjust": "evaluation",
    "ltzoo compare resnet32_ce_cifar10_lt.if100 resnet32_bcl_cifar10_lt.if100 --releases releases "
    "--plot per_class.png": "evaluation",
    "ltzoo report releases -o site": "evaluation",
}


def _strip_comment(line: str) -> str:
    """A command without its trailing `# comment` (the README's comments follow two or more spaces)."""
    return re.split(r"\s{2,}#\s", line, maxsplit=1)[0].strip()


def readme_snippets(text: str) -> list[tuple[str, str]]:
    """(key, snippet) in README order: each bash command, continuation lines joined; each Python block whole."""
    found = []
    for lang, body in FENCE.findall(text):
        if lang == "python":
            found.append((body.splitlines()[0].strip(), body))
            continue
        for command in re.sub(r"\\\n\s*", "", body).splitlines():
            if command.strip():
                found.append((_strip_comment(command), command))
    return found


def snippets_of(group: str) -> list[str]:
    """The README snippets a group test runs, verbatim, in README order."""
    return [snippet for key, snippet in readme_snippets(README.read_text()) if RUNS.get(key) == group]


def test_every_readme_snippet_is_run():
    keys = [key for key, _ in readme_snippets(README.read_text())]
    assert [k for k in keys if k not in RUNS] == [], "README snippets no test runs: add each to RUNS and a test"
    assert [k for k in RUNS if k not in keys] == [], "RUNS names snippets the README no longer has"


def test_snippets_are_read_as_a_shell_reads_them():
    text = "```bash\nls -l \\\n    -a   # all\n\necho a\n```\n```python\nimport os\nos.getcwd()\n```\n"
    assert readme_snippets(text) == [("ls -l -a", "ls -l -a   # all"), ("echo a", "echo a"),
                                     ("import os", "import os\nos.getcwd()\n")]


# --- a copy of the checkout to run them in -----------------------------------------------------------------------

def copy_checkout(dest: Path, data: Path) -> Path:
    """The files git tracks or would track (not .venv, not ignored outputs), copied to `dest/ltzoo`, whose shared
    data folder (`dest/shared/data`, where a checkout finds it) links to `data`."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split("\n")
    repo = dest / "ltzoo"
    repo.mkdir(parents=True)
    archive = dest / "checkout.tar"
    with tarfile.open(archive, "w") as tar:
        for name in files:
            if name and name != ".venv" and (ROOT / name).is_file():
                tar.add(ROOT / name, arcname=name)
    with tarfile.open(archive) as tar:
        tar.extractall(repo, filter="tar")
    archive.unlink()
    (dest / "shared").mkdir()
    (dest / "shared" / "data").symlink_to(data)
    return repo


def shrink_recipe(repo: Path, config: str) -> None:
    """Make a recipe file of the copy one short epoch long (1024 images, enough for every class to have some, which
    class-count based methods need), so its README command runs as is."""
    path = repo / "training" / "configs" / config
    recipe = yaml.safe_load(path.read_text())
    recipe["epochs"] = 1
    recipe["data"].update(batch_size=128, subset=1024)
    path.write_text(yaml.safe_dump(recipe))


def shell_env(home: Path, repo: Path) -> dict[str, str]:
    """A new shell's environment: HOME temporary (so the Hugging Face cache too: no HF_HOME or XDG_CACHE_HOME), the
    copy's ltzoo first on the path, no data override."""
    env = {k: v for k, v in os.environ.items() if k not in ("LTZOO_DATA", "HF_ENDPOINT", "HF_HOME", "HF_HUB_CACHE",
                                                             "HF_HUB_OFFLINE", "XDG_CACHE_HOME", "VIRTUAL_ENV")}
    env.update(HOME=str(home), PYTHONPATH=str(repo), PYTHONUNBUFFERED="1", HF_HUB_DISABLE_TELEMETRY="1")
    return env


def activated(command: str) -> list[str]:
    return ["bash", "-c", f"source .venv/bin/activate && {command}"]


def run(command: str, repo: Path, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(activated(command), cwd=repo, env=env, input=stdin, capture_output=True, text=True,
                            timeout=TIMEOUT)
    assert result.returncode == 0, (f"{command}: exit {result.returncode}\n{result.stdout[-3000:]}\n"
                                    f"{result.stderr[-3000:]}")
    return result


def new_workspace(base: Path, data: Path) -> tuple[Path, dict[str, str]]:
    """(a copy of the checkout with this venv as its .venv, a new shell's environment)."""
    repo = copy_checkout(base, data)
    (repo / ".venv").symlink_to(Path(sys.prefix))
    (base / "home").mkdir()
    return repo, shell_env(base / "home", repo)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A workspace with the real shared data, for the commands that measure released models."""
    return new_workspace(tmp_path_factory.mktemp("readme"), shared_file("cifar10_test_jpeg.npz").parent)


@pytest.fixture
def training_workspace(tmp_path: Path, tiny_cifar_root: Path) -> tuple[Path, dict[str, str]]:
    """A workspace whose shared data has the real training archive and 200 test images, for the training commands
    (each ends with an evaluation of the test split)."""
    return new_workspace(tmp_path, tiny_cifar_root)


@pytest.fixture(scope="module")
def served(workspace: tuple[Path, dict[str, str]]) -> Iterator[str]:
    """The copy's releases on a local Hub (what `ltzoo serve-hub releases/` prints to export): its endpoint."""
    repo, _ = workspace
    with hub_server.LocalHub(repo / "releases", workdir=repo.parent / "olah") as hub:
        yield hub.endpoint


# --- the groups ---------------------------------------------------------------------------------------------------

def test_activation_puts_the_commands_of_the_environment_first(workspace: tuple[Path, dict[str, str]]):
    repo, env = workspace
    [activate] = snippets_of("activate")
    found = run(f"{activate} && command -v ltzoo accelerate python", repo, env).stdout.split()
    assert [Path(p).parent.resolve() for p in found] == [(repo / ".venv" / "bin").resolve()] * 3


def test_the_python_usage_block_runs(workspace: tuple[Path, dict[str, str]], served: str):
    repo, env = workspace
    [block] = snippets_of("python_use")
    check = ("\nassert m.pretrained_cfg['zoo_name'] == 'resnet32_smcl_cifar100_lt.if50'\n"
             "print(ltzoo.list_models('*cifar10_lt', pretrained=True))\n")
    out = run("python -", repo, {**env, "HF_ENDPOINT": served}, stdin=block + check).stdout
    assert "resnet32_ce_cifar10_lt.if100" in out


def test_the_cli_examples_run_and_measure_what_the_registry_records(workspace: tuple[Path, dict[str, str]]):
    repo, env = workspace
    listed, info, validate = (run(command, repo, env) for command in snippets_of("cli"))
    releases = json.loads((repo / "ltzoo" / "releases.json").read_text())
    assert listed.stdout.split() == sorted(n for n in releases if n.split(".")[0].endswith("cifar10_lt"))
    assert "resnext50_smcl_imagenet_lt.e100" in info.stdout and "recipe" in info.stdout
    measured = json.loads((repo / "ce.json").read_text())
    assert round(measured["top1"], 2) == round(releases["resnet32_ce_cifar10_lt.if100"]["metrics"]["top1"], 2)
    assert (repo / "ce.png").stat().st_size > 0
    assert "serving" in validate.stderr


def test_serve_hub_prints_the_endpoint_to_export_and_stops_on_ctrl_c(workspace: tuple[Path, dict[str, str]]):
    repo, env = workspace
    [command] = snippets_of("serve_hub")
    server = subprocess.Popen(activated(f"exec {command}"), cwd=repo, env=env, stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in server.stdout:
            lines.append(line)
            if line.startswith("export HF_ENDPOINT=http://127.0.0.1:"):
                break
        assert any("ltzoo/resnet32_ce_cifar10_lt.if100" in line for line in lines), "".join(lines)
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=60) == 0
        assert "stopped" in server.stdout.read()
    finally:
        server.kill()


@pytest.mark.slow
def test_the_evaluation_commands_measure_the_releases(workspace: tuple[Path, dict[str, str]]):
    """Slow: the sweep and the report evaluate every release on the 10,000 test images (once each: cached)."""
    repo, env = workspace
    shifted, sweep, compared, report = (run(command, repo, env) for command in snippets_of("evaluation"))
    assert "backward50" in shifted.stdout and (repo / "ce.png").stat().st_size > 0
    assert "sweep on the held-out split" in sweep.stdout and "<- chosen" in sweep.stdout
    assert "resnet32_bcl_cifar10_lt.if100" in compared.stdout and (repo / "per_class.png").stat().st_size > 0
    assert (repo / "site" / "index.html").is_file() and "report written" in report.stdout


@pytest.mark.slow
def test_the_rebuild_commands_try_train_and_release(training_workspace: tuple[Path, dict[str, str]]):
    repo, env = training_workspace
    shrink_recipe(repo, "resnet32_ce_cifar10_lt.if50.yaml")
    # the copy's published IF 50 release goes, so the release command publishes as it does for an unreleased entry
    # (over a release, different weights need --force: tests/test_release_protection.py)
    shutil.rmtree(repo / "releases" / "resnet32_ce_cifar10_lt.if50", ignore_errors=True)
    trial, recipe, release = snippets_of("rebuild")
    run(trial, repo, env)
    trial_dir = Path(env["HOME"]) / ".cache" / "ltzoo" / "runs" / "trial"
    assert (trial_dir / "export" / "resnet32_ce_cifar10_lt.if50" / "model.safetensors").is_file()
    assert not (repo / "releases" / "resnet32_ce_cifar10_lt.if50").exists()
    trained = run(recipe, repo, env)
    final = re.search(r"final weights sha256 ([0-9a-f]{64})", trained.stdout)[1]
    assert not (repo / "releases" / "resnet32_ce_cifar10_lt.if50").exists()
    published = run(release, repo, env)
    assert f"release written to {repo / 'releases' / 'resnet32_ce_cifar10_lt.if50'}" in published.stdout
    assert f"sha256 {final}" in published.stdout


@pytest.mark.slow
def test_the_ablation_commands_export_beside_the_release_and_sync(
        training_workspace: tuple[Path, dict[str, str]]):
    repo, env = training_workspace
    shrink_recipe(repo, "resnet32_smcl_cifar10_lt.if100.yaml")
    released = (repo / "releases" / "resnet32_smcl_cifar10_lt.if100" / "model.safetensors").read_bytes()
    ablation, sync = snippets_of("ablation")
    run(ablation, repo, env)
    assert (Path(env["HOME"]) / ".cache" / "ltzoo" / "runs" / "smcl_saliency_opencv" / "checkpoints").is_dir()
    run(sync, repo, env)
    assert (repo / "releases" / "resnet32_smcl_cifar10_lt.if100" / "model.safetensors").read_bytes() == released
    assert "ablation `saliency_opencv`" in (repo / "README.md").read_text()


@pytest.mark.slow
def test_the_two_opening_commands_run_in_a_fresh_checkout(tmp_path: Path):
    """Creates a new .venv (pip, from the package index) in a copy without one; the suite's own command runs one
    test file there (the whole suite is this suite)."""
    repo = copy_checkout(tmp_path, shared_file("cifar10_test_jpeg.npz").parent)
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hf-cache")}
    env.pop("PYTHONPATH", None)
    quickstart, setup_and_test = snippets_of("setup")
    for command in (quickstart, f"{setup_and_test} tests/test_registry.py"):
        result = subprocess.run(["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True,
                                timeout=TIMEOUT)
        assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert (repo / "outputs" / "resnet32_bcl_cifar10_lt.if100.json").is_file()
