"""Fresh Debian root filesystems for installer tests: built once with debootstrap from
Debian's own packages (minbase), cached, and handed to each test as a throw-away overlay
with /proc, /dev and /sys mounted, so every test starts from a clean system.

The mirror is the one this machine's apt uses (read from its sources), so no address is
written here. The cache lives in work/rootfs/ (CRACK_ROOTFS_CACHE moves it); a root is
rebuilt when its build did not finish."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

from tests.conftest import REPO

CACHE = Path(os.environ.get("CRACK_ROOTFS_CACHE", REPO / "work" / "rootfs"))
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class RootUnavailable(RuntimeError):
    """This machine cannot build or enter a Debian root (not root, no debootstrap, ...)."""


def apt_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The Debian archive this machine's apt reads (not its security archive)."""
    texts = [p.read_text() for p in [sources / "sources.list", *sorted(
        (sources / "sources.list.d").glob("*"))] if p.is_file()]
    for text in texts:
        for m in re.finditer(r"^(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s*)?)(\S+)", text, re.M):
            url = m.group(1).rstrip("/")
            if url.endswith("/debian"):
                return url
    raise RootUnavailable("no Debian archive in this machine's apt sources")


def cached_root(suite: str) -> Path:
    """The cached minbase root of `suite` (bookworm, trixie), built on first use."""
    if os.geteuid() != 0:
        raise RootUnavailable("building and entering a Debian root needs root")
    if not shutil.which("debootstrap"):
        raise RootUnavailable("debootstrap is not installed (scripts/setup installs it)")
    root, done = CACHE / suite, CACHE / f"{suite}.done"
    if not done.is_file():
        shutil.rmtree(root, ignore_errors=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        log = CACHE / f"{suite}.log"
        with log.open("w") as out:
            r = subprocess.run(["debootstrap", "--variant=minbase", suite, str(root),
                                apt_mirror()], stdout=out, stderr=subprocess.STDOUT)
        if r.returncode:
            raise RootUnavailable(f"debootstrap {suite} failed ({log})")
        done.write_text(suite)
    return root


class DebianRoot:
    """A throw-away overlay of a cached root, entered with chroot."""

    def __init__(self, suite: str):
        self.suite = suite
        self.lower = cached_root(suite)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"root-{suite}-"))
        self.path = self.tmp / "root"
        self.mounts: List[Path] = []

    def __enter__(self) -> DebianRoot:
        up, work = self.tmp / "upper", self.tmp / "work"
        for d in (up, work, self.path):
            d.mkdir()
        try:
            self._mount("-t", "overlay", "overlay", "-o",
                        f"lowerdir={self.lower},upperdir={up},workdir={work}", str(self.path))
            self._mount("-t", "proc", "proc", str(self.path / "proc"))
            self._mount("--rbind", "/dev", str(self.path / "dev"))
            self._mount("-t", "sysfs", "sysfs", str(self.path / "sys"))
        except RootUnavailable:
            self.__exit__()
            raise
        # the network as this machine has it: its resolver and CA bundle
        shutil.copyfile("/etc/resolv.conf", self.path / "etc" / "resolv.conf")
        shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", self.path / "root" / "host-ca.crt")
        return self

    def _mount(self, *args: str) -> None:
        r = subprocess.run(["mount", *args], capture_output=True, text=True)
        if r.returncode:
            raise RootUnavailable(f"mount {' '.join(args)}: {r.stderr.strip()}")
        self.mounts.append(Path(args[-1]))

    def __exit__(self, *exc: object) -> None:
        for m in reversed(self.mounts):
            subprocess.run(["umount", "-R", "-l", str(m)], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def copy_checkout(self, dest: str = "/root/crack-car") -> str:
        """The project's tracked files (as a clone has them) copied into the root."""
        target = self.path / dest.lstrip("/")
        target.mkdir(parents=True)
        files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True,
                               capture_output=True).stdout
        for name in files.decode().split("\0"):
            if name and (REPO / name).is_file():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, target / name)
        return dest

    def run(self, script: str, env: Optional[Dict[str, str]] = None,
            timeout: float = 900) -> subprocess.CompletedProcess:
        """bash -c SCRIPT inside the root, with a clean environment (and pip/apt told
        this machine's CA bundle)."""
        base = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8",
                "DEBIAN_FRONTEND": "noninteractive", "PIP_CERT": "/root/host-ca.crt",
                "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        return subprocess.run(["chroot", str(self.path), "/usr/bin/env", "-i",
                               *[f"{k}={v}" for k, v in {**base, **(env or {})}.items()],
                               "bash", "-c", script], capture_output=True, text=True,
                              timeout=timeout)

    def files(self, *folders: str) -> Dict[str, str]:
        """{path: sha256} of every file under FOLDERS (bytecode caches left out)."""
        r = self.run("cd / && find " + " ".join(folders) + " -path '*/__pycache__' -prune "
                     "-o -type f -print0 | sort -z | xargs -0 sha256sum")
        assert r.returncode == 0, r.stderr
        return {line[66:]: line[:64] for line in r.stdout.splitlines()}

