"""The project's images, built from its own Dockerfiles by buildah, for a real node to import.

Owns the recipes (which Dockerfile, which files of the repository its build context holds, which
base images it takes as build arguments), their cache key, and the build itself. Nothing here
reaches a container registry: the bases are the toolchain's Debian minbase and two stand-ins built on
it from tools/images/ (Debian's Python 3.11 for ``python:3.11-slim-bookworm``, Debian's rustc-web
for ``rust:1-slim-bookworm``), passed in as the build arguments whose defaults stay the public
images. Package registries are reached from the RUN steps as on this machine (its network and its
certificate authorities): pip, apt and cargo inside the builds are a user's own.

An image is tagged by a hash of its inputs (the Dockerfile, every file of its context, its bases'
references, buildah's version), written as an OCI archive under ``<cache>/images/`` and rebuilt
only when one of them changes. buildah runs as root with overlay storage under the same folder, the
cgroupfs manager, the node's runc for RUN steps, the host's network (no network backend that would
add iptables chains) and an open-file limit no higher than the one it has (root here cannot raise it).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ferrocanary.local.toolchain import DEBIAN_BASE_REPOSITORY, Toolchain, cache_dir

# Files a build context never holds, whatever folder it names (the Dockerfiles' .dockerignore).
_IGNORED_PARTS = frozenset({"__pycache__", "target", ".pytest_cache", ".mypy_cache"})
_IGNORED_SUFFIXES = (".pyc", ".egg-info")
# This machine's extra certificate authorities (Debian's update-ca-certificates reads this folder).
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
BUILD_TIMEOUT = 3600.0


class ImageBuildError(RuntimeError):
    """An image did not build; the message names it and the log that says why."""


@dataclass(frozen=True)
class Recipe:
    """One image: its Dockerfile and context (paths in the repository), and its bases by recipe name."""

    name: str
    repository: str
    tag_prefix: str
    dockerfile: str
    context: tuple[str, ...]
    bases: Mapping[str, str] = field(default_factory=dict)  # build argument -> recipe name
    # Files from this machine placed in the context (folder in the context -> folder here).
    host_files: Mapping[str, Path] = field(default_factory=dict)


DEBIAN = "debian"
RECIPES: tuple[Recipe, ...] = (
    Recipe(
        "python-base",
        "ferrocanary.local/python",
        "3.11-bookworm",
        "tools/images/python-base.Dockerfile",
        (),
        {"DEBIAN_IMAGE": DEBIAN},
        {"ca-certificates": HOST_CA_DIR},
    ),
    Recipe(
        "rust-base",
        "ferrocanary.local/rust",
        "bookworm",
        "tools/images/rust-base.Dockerfile",
        (),
        {"DEBIAN_IMAGE": DEBIAN},
        {"ca-certificates": HOST_CA_DIR},
    ),
    Recipe(
        "operator",
        "ferrocanary.local/ferrocanary",
        "0.1.0",
        "operator/Dockerfile",
        ("pyproject.toml", "README.md", "operator/ferrocanary"),
        {"PYTHON_IMAGE": "python-base"},
    ),
    Recipe(
        "textscore-python",
        "ferrocanary.local/textscore",
        "python",
        "workloads/Dockerfile.python",
        ("workloads/textscore",),
        {"PYTHON_IMAGE": "python-base"},
    ),
    Recipe(
        "textscore-rust",
        "ferrocanary.local/textscore",
        "rust",
        "workloads/Dockerfile.rust",
        (
            "Cargo.toml",
            "Cargo.lock",
            "workloads/textscore",
            "workloads/textscore-core",
            "workloads/textscore-native",
        ),
        {"PYTHON_IMAGE": "python-base", "RUST_IMAGE": "rust-base"},
    ),
)
# The images a node runs (the bases are only built on).
PROJECT_IMAGES = ("operator", "textscore-python", "textscore-rust")


def _recipe(name: str) -> Recipe:
    (recipe,) = (r for r in RECIPES if r.name == name)
    return recipe


def _ignored(relative: Path) -> bool:
    return any(part in _IGNORED_PARTS or part.endswith(_IGNORED_SUFFIXES) for part in relative.parts)


def _files_under(root: Path, entry: str) -> list[tuple[str, Path]]:
    """(path in the context, file here) for ``entry`` under ``root``, in a stable order."""
    source = root / entry
    if source.is_file():
        return [(entry, source)]
    found = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not _ignored(relative):
            found.append((str(relative), path))
    return found


@dataclass(frozen=True)
class Built:
    """One image as the cache holds it, and what getting it cost (0 when it was cached)."""

    name: str
    reference: str
    archive: Path
    cached: bool
    seconds: float

    def to_json(self) -> dict[str, object]:
        return {
            "reference": self.reference,
            "archive": str(self.archive),
            "cached": self.cached,
            "seconds": round(self.seconds, 1),
        }


class ImageBuilder:
    """Builds the recipes in order, each on the references of the ones before it."""

    def __init__(self, toolchain: Toolchain, directory: Path | None = None) -> None:
        self.toolchain = toolchain
        self.directory = directory or cache_dir() / "images"
        self._references: dict[str, str] = {DEBIAN: f"{DEBIAN_BASE_REPOSITORY}:{toolchain.debian_base_tag()}"}
        self._archives: dict[str, Path] = {DEBIAN: toolchain.path("debian-base")}

    # ------------------------------------------------------------------------------ identity
    def context_files(self, recipe: Recipe) -> list[tuple[str, Path]]:
        root = self.toolchain.root
        files = [(recipe.dockerfile, root / recipe.dockerfile)]
        for entry in recipe.context:
            files += _files_under(root, entry)
        for inside, here in recipe.host_files.items():
            if here.is_dir():
                files += [(f"{inside}/{p.name}", p) for p in sorted(here.glob("*.crt")) if p.is_file()]
        return files

    def reference(self, recipe: Recipe) -> str:
        """``repository:prefix-<hash>``, the hash of every input (so never ``latest``)."""
        digest = hashlib.sha256(f"buildah={self.toolchain.versions.buildah_deb}\n".encode())
        for argument, base in sorted(recipe.bases.items()):
            if base not in self._references:  # a base recipe's tag, from its own inputs
                self._references[base] = self.reference(_recipe(base))
            digest.update(f"{argument}={self._references[base]}\n".encode())
        for inside, here in self.context_files(recipe):
            mode = "x" if os.access(here, os.X_OK) else "-"
            digest.update(f"{inside}\0{mode}\0".encode() + here.read_bytes() + b"\0")
        return f"{recipe.repository}:{recipe.tag_prefix}-{digest.hexdigest()[:12]}"

    def archive(self, reference: str) -> Path:
        return self.directory / (reference.rsplit("/", 1)[-1].replace(":", "_") + ".oci.tar")

    # ------------------------------------------------------------------------------ building
    def _env(self) -> dict[str, str]:
        config = self.directory / "buildah"
        config.mkdir(parents=True, exist_ok=True)
        storage = config / "storage.conf"
        run, graph = config / "run", config / "storage"
        storage.write_text(f'[storage]\ndriver = "overlay"\nrunroot = "{run}"\ngraphroot = "{graph}"\n')
        # Short names are never resolved against a registry: every FROM here is a full local reference.
        registries = config / "registries.conf"
        registries.write_text('unqualified-search-registries = []\nshort-name-mode = "disabled"\n')
        containers = config / "containers.conf"
        containers.write_text('[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "none"\n')
        (config / "policy.json").write_text('{"default": [{"type": "insecureAcceptAnything"}]}\n')
        env = dict(os.environ)
        env.update(
            CONTAINERS_STORAGE_CONF=str(storage),
            CONTAINERS_REGISTRIES_CONF=str(registries),
            CONTAINERS_CONF=str(containers),
            BUILDAH_ISOLATION="oci",
        )
        return env

    def _buildah(self, args: Sequence[str], log: Path, env: dict[str, str]) -> None:
        policy = self.directory / "buildah" / "policy.json"
        argv = [str(self.toolchain.path("buildah")), f"--signature-policy={policy}", *args]
        with log.open("a") as out:
            out.write(f"\n$ {' '.join(argv)}\n")
            out.flush()
            proc = subprocess.run(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=BUILD_TIMEOUT, check=False
            )
        if proc.returncode != 0:
            raise ImageBuildError(f"buildah {args[0]} failed (exit {proc.returncode}); see {log}")

    def _stage_context(self, recipe: Recipe, directory: Path) -> None:
        shutil.rmtree(directory, ignore_errors=True)
        for inside, here in self.context_files(recipe):
            target = directory / inside
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(here, target)
        for inside in recipe.host_files:
            (directory / inside).mkdir(parents=True, exist_ok=True)  # COPY of an empty folder works

    def _build(self, recipe: Recipe, reference: str, log: Path) -> None:
        env = self._env()
        for base in recipe.bases.values():
            # Into buildah's storage from its archive (a no-op when it is there already).
            self._buildah(["pull", "--quiet", f"oci-archive:{self._archives[base]}"], log, env)
        context = self.directory / "context" / recipe.name
        self._stage_context(recipe, context)
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        build = [
            "build",
            "--isolation=oci",
            f"--runtime={self.toolchain.path('runc')}",
            "--network=host",
            "--pull=never",
            f"--ulimit=nofile={nofile}:{nofile}",
            "--layers=false",
            f"--file={context / recipe.dockerfile}",
            f"--tag={reference}",
        ]
        build += [f"--build-arg={arg}={self._references[base]}" for arg, base in sorted(recipe.bases.items())]
        self._buildah([*build, str(context)], log, env)
        archive = self.archive(reference)
        partial = archive.with_name(archive.name + ".tmp")
        partial.unlink(missing_ok=True)
        # Uncompressed layers: gzip of a 1 GB image costs a core for minutes, and the archive
        # only travels to this machine's containerd.
        self._buildah(
            ["push", "--quiet", "--disable-compression", reference, f"oci-archive:{partial}:{reference}"],
            log,
            env,
        )
        partial.rename(archive)
        shutil.rmtree(context, ignore_errors=True)

    def _prune(self, recipe: Recipe, kept: Path, log: Path) -> None:
        """Drop this recipe's older builds (archive and buildah's copy): one per recipe stays cached."""
        prefix = self.archive(f"{recipe.repository}:{recipe.tag_prefix}-").name.removesuffix(".oci.tar")
        env = self._env()
        for old in self.directory.glob(f"{prefix}*.oci.tar"):
            if old != kept:
                tag = old.name.removesuffix(".oci.tar").split("_", 1)[1]
                old.unlink(missing_ok=True)
                with contextlib.suppress(ImageBuildError):
                    self._buildah(["rmi", f"{recipe.repository}:{tag}"], log, env)
        with contextlib.suppress(ImageBuildError):  # the stages' intermediate images
            self._buildah(["rmi", "--prune"], log, env)

    def ensure(
        self,
        names: Sequence[str] = PROJECT_IMAGES,
        progress: Callable[[str], None] = lambda _: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> list[Built]:
        """Every recipe up to the last of ``names``, built if its archive is missing; those of ``names``."""
        wanted = set(names)
        last = max(i for i, r in enumerate(RECIPES) if r.name in wanted)
        done: list[Built] = []
        self.directory.mkdir(parents=True, exist_ok=True)
        for recipe in RECIPES[: last + 1]:
            reference = self.reference(recipe)
            archive = self.archive(reference)
            self._references[recipe.name], self._archives[recipe.name] = reference, archive
            if archive.is_file():
                done.append(Built(recipe.name, reference, archive, True, 0.0))
                continue
            log = self.directory / "logs" / f"{recipe.name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("")
            progress(f"building image {reference} from {recipe.dockerfile} (log: {log})")
            started = clock()
            self._build(recipe, reference, log)
            seconds = clock() - started
            progress(f"built {reference} in {seconds:.0f}s")
            self._prune(recipe, archive, log)
            done.append(Built(recipe.name, reference, archive, False, seconds))
        return [b for b in done if b.name in wanted]
