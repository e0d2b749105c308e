"""A self-hosted Hub for closed networks and tests: serves release folders to huggingface_hub through olah.

Each release folder `<releases>/<repo>/` becomes a git repo (branch main) under olah's mirrors path as
`models/<namespace>/<repo>`; olah runs in offline mode on 127.0.0.1 and answers the real client.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from .registry import hub_namespace

STARTUP_TIMEOUT_S = 30.0


class HubServerError(OSError):
    """The local Hub cannot serve: olah missing, the port taken, or olah not answering as this hub on it."""


def port_is_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:`port` now (a bind test, as olah's own bind will do)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the moment of the call."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=ltzoo", "-c", "user.email=ltzoo@localhost", *args],
        cwd=repo, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def release_folders(releases_dir: Path) -> list[Path]:
    """Folders that look like releases (they hold a config.json)."""
    return sorted(p for p in releases_dir.iterdir() if p.is_dir() and (p / "config.json").is_file())


def build_mirror(releases_dir: str | Path, mirrors_dir: str | Path, namespace: str | None = None) -> list[str]:
    """Copy each release folder into a fresh git repo under `mirrors/models/<namespace>/`; returns the repo ids."""
    releases_dir, mirrors_dir = Path(releases_dir), Path(mirrors_dir)
    if not releases_dir.is_dir():
        raise FileNotFoundError(f"releases folder {releases_dir} does not exist")
    namespace = namespace or hub_namespace()
    repo_ids = []
    for folder in release_folders(releases_dir):
        repo = mirrors_dir / "models" / namespace / folder.name
        if repo.exists():
            shutil.rmtree(repo)
        shutil.copytree(folder, repo)
        _git(repo, "init", "-q", "-b", "main")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", f"release {folder.name}")
        repo_ids.append(f"{namespace}/{folder.name}")
    return repo_ids


class LocalHub:
    """Context manager running olah over a releases folder; `endpoint` is the value for HF_ENDPOINT."""

    def __init__(
        self, releases_dir: str | Path, namespace: str | None = None, port: int | None = None,
        workdir: str | Path | None = None,
    ) -> None:
        if importlib.util.find_spec("olah") is None:
            raise HubServerError("the local Hub needs olah: pip install 'ltzoo[hub]'")
        self.releases_dir = Path(releases_dir).resolve()
        self.namespace = namespace or hub_namespace()
        self.port = port or free_port()
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="ltzoo-hub-")
        self.workdir = Path(workdir or self._tmp.name).resolve()
        self.repo_ids: list[str] = []
        self._proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        """The URL to put in ``HF_ENDPOINT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        """Where olah's output goes; a failed start names it or quotes its tail."""
        return self.workdir / "olah.log"

    def _write_config(self) -> Path:
        netloc = f"127.0.0.1:{self.port}"
        toml = (
            "[basic]\n"
            f'host = "127.0.0.1"\nport = {self.port}\n'
            f'repos-path = "{self.workdir / "repos"}"\n'
            f'mirror-scheme = "http"\nmirror-netloc = "{netloc}"\nmirror-lfs-netloc = "{netloc}"\n'
            f'mirrors-path = ["{self.workdir / "mirrors"}"]\n\n'
            "[accessibility]\noffline = true\n"
        )
        path = self.workdir / "olah.toml"
        path.write_text(toml)
        return path

    def start(self) -> LocalHub:
        """Mirror the release folders as git repos, start olah on them and wait until it answers on its port as this
        hub (it lists the first mirrored repo): a port another process holds is refused, never reported as served."""
        if not port_is_free(self.port):
            raise HubServerError(f"port {self.port} on 127.0.0.1 is in use by another process; pass another --port, "
                                 "or none for a free one")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.repo_ids = build_mirror(self.releases_dir, self.workdir / "mirrors", self.namespace)
        config = self._write_config()
        with open(self.log_file, "w") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "olah.server", "-c", str(config), "--log-path", str(self.workdir / "logs")],
                cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code, log_tail = self._proc.returncode, self.log_file.read_text()[-2000:]
                self.stop()
                raise HubServerError(f"olah exited with code {code} on port {self.port}:\n{log_tail}")
            if self._answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise HubServerError(f"olah did not answer on port {self.port} within {STARTUP_TIMEOUT_S:.0f} s; "
                             f"log: {self.log_file}")

    def _answers(self) -> bool:
        """Whether this hub's olah answers: the model API knows the first mirrored repo (or, with none, the port
        accepts connections while the child runs)."""
        if not self.repo_ids:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False
        try:
            url = f"{self.endpoint}/api/models/{self.repo_ids[0]}/revision/main"
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.loads(response.read()).get("id") == self.repo_ids[0]
        except (OSError, ValueError, AttributeError):
            return False

    def stop(self) -> None:
        """Terminate olah (kill it if it has not exited after 10 s) and remove its temporary folder."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def use_endpoint(endpoint: str, cache_dir: str | Path | None = None, offline: bool = False) -> None:
    """Point this process's huggingface_hub at `endpoint` (its constants are read once, at first import)."""
    import os

    from huggingface_hub import constants

    os.environ["HF_ENDPOINT"] = endpoint
    constants.ENDPOINT = endpoint
    constants.HUGGINGFACE_CO_URL_TEMPLATE = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    constants.HF_HUB_OFFLINE = offline
    if cache_dir is not None:
        constants.HF_HUB_CACHE = str(cache_dir)
