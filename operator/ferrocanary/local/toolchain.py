"""Builds and caches the sandbox's binaries from package registries (no release downloads).

Owns: reading the pinned versions (tools/versions.env), the cache layout under
``~/.cache/ferrocanary``, and one build recipe per component: the Kubernetes control plane and
kubectl (Go wrapper module in tools/k8s), etcd (tools/etcd), kwok and helm (``go install``),
Prometheus and promtool (Debian's package, extracted, never installed as a service), the
Gateway API CRDs and Istio's VirtualService CRD (files inside the Go module downloads); and for a
real node, the kubelet and kube-proxy (the same Kubernetes module), kube-state-metrics (its Go module),
and containerd, runc, the CNI plugins and iptables (Debian's packages, extracted, never installed).

Every build writes into a temporary directory that is renamed into place only on success, so a
build interrupted halfway never looks finished. Logs go to ``<cache>/logs/<component>.log``.

``Toolchain.ensure`` walks every component in order and tells a ``BuildReporter`` what it finds
(cached) and what it does (started, finished, failed, with seconds), so the command line can show
a first run's 10-20 minutes of Go builds as they happen instead of in silence.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ferrocanary.local import images

ISTIO_CRD_FILE = "virtualservices.networking.istio.io.yaml"
DEBIAN_BASE_ARCHIVE = "image.oci.tar"
DEBIAN_BASE_REPOSITORY = "ferrocanary.local/debian"
# The CNI plugins a node's bridge network uses (containerd's CRI calls them by these names).
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap")
# What kube-proxy, the kubelet and portmap exec from PATH; each is a wrapper around xtables-nft-multi.
IPTABLES_COMMANDS = (
    "iptables",
    "iptables-save",
    "iptables-restore",
    "ip6tables",
    "ip6tables-save",
    "ip6tables-restore",
)
# iptables' shared libraries: a fresh machine may lack any of them, so all are extracted beside it.
IPTABLES_LIBRARIES = (
    "libip4tc2",
    "libip6tc2",
    "libxtables12",
    "libmnl0",
    "libnftnl11",
    "libnetfilter-conntrack3",
    "libnfnetlink0",
)
# Runs the extracted multi-call binary with its own libraries; it picks its mode from argv[0].
_IPTABLES_WRAPPER = """#!/bin/bash
# Debian's iptables extracted by ferrocanary's toolchain (not installed): its libraries live beside it.
root="$(dirname "$(readlink -f "$0")")/root"
lib="$root/usr/lib/x86_64-linux-gnu"
export LD_LIBRARY_PATH="$lib" XTABLES_LIBDIR="$lib/xtables"
exec -a "$(basename "$0")" "$root/usr/sbin/xtables-nft-multi" "$@"
"""
# buildah's libraries that a machine without containers tooling lacks (libseccomp2, libselinux1,
# libudev1 and libgpg-error0 are part of every Debian); checked with ldd on the extracted binary.
BUILDAH_LIBRARIES = ("libgpgme11", "libassuan0", "libdevmapper1.02.1")
_BUILDAH_WRAPPER = """#!/bin/bash
# Debian's buildah extracted by ferrocanary's toolchain (not installed): its libraries live beside it.
# RUN steps use an OCI runtime (runc), not buildah's chroot isolation, whose re-exec clears this
# environment and so would not find the libraries.
root="$(dirname "$(readlink -f "$0")")/root"
export LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu"
exec "$root/usr/bin/buildah" "$@"
"""


class ToolchainError(RuntimeError):
    """A component could not be built; the message names it and its log file."""


def repo_root() -> Path:
    """The checkout that holds tools/versions.env (the package is installed editable from it)."""
    override = os.environ.get("FERROCANARY_REPO")
    if override:
        return Path(override)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "tools" / "versions.env").is_file():
            return parent
    raise ToolchainError(
        "cannot find tools/versions.env above the ferrocanary package; set FERROCANARY_REPO to the checkout"
    )


def cache_dir() -> Path:
    return Path(os.environ.get("FERROCANARY_CACHE", Path.home() / ".cache" / "ferrocanary"))


@dataclass(frozen=True)
class Versions:
    kubernetes: str
    etcd: str
    kwok: str
    helm: str
    gateway_api: str
    istio_api: str
    prometheus_deb: str
    nginx_deb: str
    kube_state_metrics: str
    containerd_deb: str
    runc_deb: str
    cni_plugins_deb: str
    iptables_deb: str
    busybox_deb: str
    prometheus_k8s_sd: str
    mmdebstrap_deb: str
    debian_base_suite: str
    buildah_deb: str

    @property
    def kubernetes_minor(self) -> str:
        return self.kubernetes.lstrip("v").split(".")[1]


def read_versions(root: Path | None = None) -> Versions:
    path = (root or repo_root()) / "tools" / "versions.env"
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    try:
        return Versions(
            kubernetes=values["KUBERNETES_VERSION"],
            etcd=values["ETCD_VERSION"],
            kwok=values["KWOK_VERSION"],
            helm=values["HELM_VERSION"],
            gateway_api=values["GATEWAY_API_VERSION"],
            istio_api=values["ISTIO_API_VERSION"],
            prometheus_deb=values["PROMETHEUS_DEB_VERSION"],
            nginx_deb=values["NGINX_DEB_VERSION"],
            kube_state_metrics=values["KUBE_STATE_METRICS_VERSION"],
            containerd_deb=values["CONTAINERD_DEB_VERSION"],
            runc_deb=values["RUNC_DEB_VERSION"],
            cni_plugins_deb=values["CNI_PLUGINS_DEB_VERSION"],
            iptables_deb=values["IPTABLES_DEB_VERSION"],
            busybox_deb=values["BUSYBOX_DEB_VERSION"],
            prometheus_k8s_sd=values["PROMETHEUS_K8S_SD_VERSION"],
            mmdebstrap_deb=values["MMDEBSTRAP_DEB_VERSION"],
            debian_base_suite=values["DEBIAN_BASE_SUITE"],
            buildah_deb=values["BUILDAH_DEB_VERSION"],
        )
    except KeyError as missing:
        raise ToolchainError(f"{path}: {missing.args[0]} is not set") from None


def _deb_version_dir(version: str) -> str:
    return version.replace("+", "_").replace("~", "_").replace(":", "_")


@dataclass(frozen=True)
class Component:
    """One cached build: where its files land and how to make them."""

    name: str
    version: str
    files: tuple[str, ...]
    hint: str  # what the user is waiting for, shown beside the spinner
    build: Callable[[Path, Path], None]  # (temporary target dir, log file) -> None

    @property
    def directory(self) -> Path:
        return cache_dir() / "bin" / f"{self.name}-{self.version}"

    def is_built(self) -> bool:
        return all((self.directory / f).exists() for f in self.files)


@dataclass(frozen=True)
class BuildRecord:
    """What ``Toolchain.ensure`` did for one component: found it cached, or built it in ``seconds``."""

    name: str
    version: str
    cached: bool
    seconds: float
    directory: Path

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "directory": str(self.directory),
            "cached": self.cached,
            "seconds": round(self.seconds, 1),
        }


class BuildReporter(Protocol):
    """Told about each component as ``Toolchain.ensure`` reaches it (the CLI renders it)."""

    def plan(self, components: Sequence[Component], missing: Sequence[Component]) -> None:
        """Called once, before anything is built: every component and the ones to build."""

    def cached(self, component: Component) -> None: ...

    def started(self, component: Component, log: Path) -> None: ...

    def finished(self, record: BuildRecord) -> None: ...

    def failed(self, component: Component, seconds: float, error: BaseException) -> None: ...


class Toolchain:
    """The sandbox's components at their pinned versions, and the paths of their executables."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or repo_root()
        self.versions = read_versions(self.root)
        v = self.versions
        self.components: tuple[Component, ...] = (
            Component(
                "kubernetes",
                v.kubernetes,
                ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"),
                "go build of the control plane and kubectl (first time 10-20 min on 2 cores)",
                self._build_kubernetes,
            ),
            Component("etcd", v.etcd, ("etcd",), "go build of etcd", self._build_etcd),
            Component("kwok", v.kwok, ("kwok",), "go install of kwok (fake kubelets)", self._build_kwok),
            Component("helm", v.helm, ("helm",), "go install of helm", self._build_helm),
            Component(
                "prometheus",
                _deb_version_dir(v.prometheus_deb),
                ("prometheus", "promtool"),
                "Debian's prometheus package, extracted",
                self._build_prometheus,
            ),
            Component(
                "nginx",
                _deb_version_dir(v.nginx_deb),
                ("nginx",),
                "Debian's nginx, extracted (the sandbox's weighted gateway)",
                self._build_nginx,
            ),
            Component(
                "gateway-api",
                v.gateway_api,
                ("standard-install.yaml",),
                "Gateway API CRDs from the Go module",
                self._fetch_gateway_api,
            ),
            Component(
                "istio-api",
                v.istio_api,
                (ISTIO_CRD_FILE,),
                "Istio's VirtualService CRD from the istio.io/api Go module (for the Istio router's tests)",
                self._fetch_istio_api,
            ),
            *self._node_components(),
        )

    def _node_components(self) -> tuple[Component, ...]:
        """What a real node runs (``local up --nodes real``); built by ``make setup`` like the rest."""
        v = self.versions
        return (
            Component(
                "kubelet",
                v.kubernetes,
                ("kubelet", "kube-proxy"),
                "go build of the kubelet and kube-proxy (shares most packages with the control plane)",
                self._build_kubelet,
            ),
            Component(
                "kube-state-metrics",
                v.kube_state_metrics,
                ("kube-state-metrics",),
                "go install of kube-state-metrics",
                self._build_kube_state_metrics,
            ),
            Component(
                "containerd",
                _deb_version_dir(v.containerd_deb),
                ("containerd", "containerd-shim-runc-v2", "ctr"),
                "Debian's containerd, extracted",
                self._build_containerd,
            ),
            Component(
                "runc", _deb_version_dir(v.runc_deb), ("runc",), "Debian's runc, extracted", self._build_runc
            ),
            Component(
                "cni-plugins",
                _deb_version_dir(v.cni_plugins_deb),
                CNI_PLUGINS,
                "Debian's CNI plugins (bridge, host-local, loopback, portmap), extracted",
                self._build_cni_plugins,
            ),
            Component(
                "iptables",
                _deb_version_dir(v.iptables_deb),
                IPTABLES_COMMANDS,
                "Debian's iptables (nf_tables) and its libraries, extracted (for kube-proxy and portmap)",
                self._build_iptables,
            ),
            Component(
                "pause",
                self._source_hash(self.root / "tools" / "pause"),
                ("pause",),
                "go build of the pods' sandbox process (tools/pause)",
                self._build_pause,
            ),
            Component(
                "busybox",
                _deb_version_dir(v.busybox_deb),
                ("busybox",),
                "Debian's static busybox, extracted (the node's smoke-test image)",
                self._build_busybox,
            ),
            Component(
                "prometheus-k8s-sd",
                v.prometheus_k8s_sd,
                ("prometheus",),
                "go build of Prometheus with Kubernetes service discovery (the real node's)",
                self._build_prometheus_k8s_sd,
            ),
            Component(
                "debian-base",
                self.debian_base_tag(),
                (DEBIAN_BASE_ARCHIVE,),
                "mmdebstrap of a minimal Debian, written as an OCI image (the base of the project's images)",
                self._build_debian_base,
            ),
            Component(
                "buildah",
                _deb_version_dir(v.buildah_deb),
                ("buildah",),
                "Debian's buildah and its libraries, extracted (builds the project's images)",
                self._build_buildah,
            ),
        )

    def debian_base_tag(self) -> str:
        """The base image's tag: its suite and a hash of what makes it (never ``latest``)."""
        v = self.versions
        # "history": the image's config records its one layer (images built on it need that).
        recipe = f"{v.debian_base_suite} minbase mmdebstrap={v.mmdebstrap_deb} history".encode()
        return f"{v.debian_base_suite}-{hashlib.sha256(recipe).hexdigest()[:12]}"

    @staticmethod
    def _source_hash(directory: Path) -> str:
        """A version for a component built from this repository's own files: a hash of them."""
        digest = hashlib.sha256()
        for path in sorted(directory.glob("*")):
            if path.is_file():
                digest.update(path.name.encode() + b"\0" + path.read_bytes())
        return digest.hexdigest()[:12]

    # ----------------------------------------------------------------------------------- paths
    def component(self, name: str) -> Component:
        for c in self.components:
            if c.name == name:
                return c
        raise KeyError(name)

    def path(self, component: str, file: str | None = None) -> Path:
        c = self.component(component)
        return c.directory / (file or c.files[0])

    def needed(self, nodes: str = "real") -> tuple[Component, ...]:
        """What a sandbox with ``nodes`` runs: everything for a real node, less for kwok's fakes."""
        if nodes == "real":
            return self.components
        node_only = {c.name for c in self._node_components()}
        return tuple(c for c in self.components if c.name not in node_only)

    def missing(self, nodes: str = "real") -> list[Component]:
        """The components ``nodes`` needs that are not built yet (``real``: every component)."""
        return [c for c in self.needed(nodes) if not c.is_built()]

    @staticmethod
    def log_path(component: Component) -> Path:
        return cache_dir() / "logs" / f"{component.name}-{component.version}.log"

    def ensure(
        self, reporter: BuildReporter, clock: Callable[[], float] = time.monotonic, nodes: str = "real"
    ) -> list[BuildRecord]:
        """Build every missing component ``nodes`` needs in order, telling ``reporter`` about each
        one (cached too).

        A failure is reported, then raised: the components after it are not attempted, as before.
        """
        needed = self.needed(nodes)
        missing = self.missing(nodes)
        reporter.plan(needed, missing)
        to_build = {c.name for c in missing}
        records = []
        for component in needed:
            if component.name not in to_build:
                reporter.cached(component)
                records.append(BuildRecord(component.name, component.version, True, 0.0, component.directory))
                continue
            reporter.started(component, self.log_path(component))
            started = clock()
            try:
                self.build(component)
            except BaseException as exc:
                reporter.failed(component, clock() - started, exc)
                raise
            record = BuildRecord(
                component.name, component.version, False, clock() - started, component.directory
            )
            reporter.finished(record)
            records.append(record)
        return records

    def build(self, component: Component) -> None:
        """Build one component atomically; raise ToolchainError naming its log on failure."""
        log = self.log_path(component)
        log.parent.mkdir(parents=True, exist_ok=True)
        tmp = component.directory.with_name(component.directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            component.build(tmp, log)
            absent = [f for f in component.files if not (tmp / f).exists()]
            if absent:
                raise ToolchainError(
                    f"{component.name}: build finished without {', '.join(absent)}; see {log}"
                )
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        shutil.rmtree(component.directory, ignore_errors=True)
        tmp.rename(component.directory)

    # ---------------------------------------------------------------------------------- recipes
    # Every `go build` and `go install` below runs with -v: it names each package on stderr (the
    # component's log) as it is compiled, and only those not already in GOCACHE, so the progress
    # view can count them while a 10-minute build runs. It changes nothing that is built.
    def _go_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            GOTOOLCHAIN="local",
            CGO_ENABLED="0",
            GOFLAGS="-trimpath",
            GOMODCACHE=str(cache_dir() / "go" / "mod"),
            GOCACHE=str(cache_dir() / "go" / "build"),
        )
        return env

    def _run(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> str:
        with log.open("a") as out:
            out.write(f"\n$ {' '.join(argv)}\n")
            out.flush()
            proc = subprocess.run(
                list(argv),
                cwd=cwd,
                env=env or self._go_env(),
                stdout=subprocess.PIPE,
                stderr=out,
                text=True,
                check=False,
            )
            out.write(proc.stdout)
        if proc.returncode != 0:
            raise ToolchainError(
                f"{name}: `{' '.join(argv[:3])} ...` failed (exit {proc.returncode}); see {log}"
            )
        return proc.stdout

    def _go_version_ldflags(self) -> str:
        v = self.versions
        flags = ["-s", "-w"]
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
            flags += [
                f"-X {pkg}.gitVersion={v.kubernetes}",
                f"-X {pkg}.gitMajor=1",
                f"-X {pkg}.gitMinor={v.kubernetes_minor}",
                f"-X {pkg}.gitTreeState=clean",
            ]
        return " ".join(flags)

    def regenerate_kubernetes_module(self, log: Path) -> None:
        """Rewrite tools/k8s/go.mod for KUBERNETES_VERSION (replace every staging module)."""
        v = self.versions
        module_dir = self.root / "tools" / "k8s"
        info = json.loads(
            self._run(
                "kubernetes", ["go", "mod", "download", "-json", f"k8s.io/kubernetes@{v.kubernetes}"], log
            )
        )
        upstream = Path(info["GoMod"]).read_text()
        go_line = re.search(r"^go \S+$", upstream, re.MULTILINE)
        staging = re.findall(r"^\s*(k8s\.io/[a-z0-9-]+) => \./staging/", upstream, re.MULTILINE)
        patch = v.kubernetes.lstrip("v").split(".", 1)[1]  # "33.13" -> staging v0.33.13
        (module_dir / "go.mod").write_text(
            f"module ferrocanary.io/tools/k8s\n\n{go_line.group(0) if go_line else 'go 1.24.0'}\n"
        )
        (module_dir / "go.sum").unlink(missing_ok=True)
        for module in staging:
            self._run(
                "kubernetes",
                ["go", "mod", "edit", f"-replace={module}={module}@v0.{patch}"],
                log,
                cwd=module_dir,
            )
        self._run(
            "kubernetes",
            ["go", "mod", "edit", f"-require=k8s.io/kubernetes@{v.kubernetes}"],
            log,
            cwd=module_dir,
        )
        # -e: test-only imports of upstream packages may name module versions the proxy lacks.
        self._run("kubernetes", ["go", "mod", "tidy", "-e"], log, cwd=module_dir)

    def _build_kubernetes(self, target: Path, log: Path) -> None:
        module_dir = self.root / "tools" / "k8s"
        if f"k8s.io/kubernetes {self.versions.kubernetes}" not in (module_dir / "go.mod").read_text():
            self.regenerate_kubernetes_module(log)
        commands = [
            f"k8s.io/kubernetes/cmd/{c}"
            for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
        ]
        build = ["go", "build", "-v", "-ldflags", self._go_version_ldflags(), "-o", f"{target}/"]
        self._run("kubernetes", [*build, *commands], log, cwd=module_dir)

    def _build_etcd(self, target: Path, log: Path) -> None:
        module_dir = self.root / "tools" / "etcd"
        self._run(
            "etcd",
            ["go", "build", "-v", "-ldflags", "-s -w", "-o", str(target / "etcd"), "."],
            log,
            cwd=module_dir,
        )

    def _go_install(self, name: str, package: str, target: Path, log: Path, ldflags: str) -> None:
        env = self._go_env()
        env["GOBIN"] = str(target)
        self._run(name, ["go", "install", "-v", "-ldflags", ldflags, package], log, env=env)

    def _build_kwok(self, target: Path, log: Path) -> None:
        v = self.versions.kwok
        self._go_install(
            "kwok",
            f"sigs.k8s.io/kwok/cmd/kwok@{v}",
            target,
            log,
            f"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version={v}",
        )

    def _build_helm(self, target: Path, log: Path) -> None:
        v = self.versions
        flags = ["-s", "-w", f"-X helm.sh/helm/v3/internal/version.version={v.helm}"]
        for pkg in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
            flags += [f"-X {pkg}.k8sVersionMajor=1", f"-X {pkg}.k8sVersionMinor={v.kubernetes_minor}"]
        self._go_install("helm", f"helm.sh/helm/v3/cmd/helm@{v.helm}", target, log, " ".join(flags))

    def _extract_deb(
        self, package: str, version: str, files: dict[str, str], target: Path, log: Path
    ) -> None:
        """Download one Debian package and copy ``files`` (path in the package -> name) out of it.

        The package is never installed: its maintainer scripts would start a system service.
        If Debian has superseded the pinned version (security updates do), the current one is taken
        and the log says so.
        """
        download = target / "deb"
        download.mkdir()
        env = dict(os.environ)
        pinned = ["apt-get", "download", f"{package}={version}"]
        try:
            self._run(package, pinned, log, cwd=download, env=env)
        except ToolchainError:
            # A fresh machine has no package lists yet: refresh them once, then retry.
            self._run(package, ["apt-get", "update", "-qq"], log, env=env)
            try:
                self._run(package, pinned, log, cwd=download, env=env)
            except ToolchainError:
                with log.open("a") as out:
                    out.write(f"\n{package}={version} is no longer served; taking Debian's current version\n")
                self._run(package, ["apt-get", "download", package], log, cwd=download, env=env)
        (deb,) = download.glob(f"{package}_*.deb")
        extracted = target / "tree"
        self._run(package, ["dpkg-deb", "-x", str(deb), str(extracted)], log, env=env)
        for inside, name in files.items():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(extracted / inside), target / name)
        shutil.rmtree(download)
        shutil.rmtree(extracted)

    def _build_prometheus(self, target: Path, log: Path) -> None:
        files = {"usr/bin/prometheus": "prometheus", "usr/bin/promtool": "promtool"}
        self._extract_deb("prometheus", self.versions.prometheus_deb, files, target, log)

    def _build_nginx(self, target: Path, log: Path) -> None:
        self._extract_deb("nginx", self.versions.nginx_deb, {"usr/sbin/nginx": "nginx"}, target, log)

    def _go_module_dir(self, name: str, module: str, log: Path) -> Path:
        """The extracted tree of a Go module from the module proxy (into the toolchain's GOMODCACHE)."""
        info = json.loads(self._run(name, ["go", "mod", "download", "-json", module], log))
        return Path(info["Dir"])

    def _fetch_gateway_api(self, target: Path, log: Path) -> None:
        module = self._go_module_dir(
            "gateway-api", f"sigs.k8s.io/gateway-api@{self.versions.gateway_api}", log
        )
        standard = module / "config" / "crd" / "standard"
        documents = [p.read_text() for p in sorted(standard.glob("*.yaml"))]
        if not documents:
            raise ToolchainError(f"gateway-api: no CRDs under {standard}; see {log}")
        (target / "standard-install.yaml").write_text("\n---\n".join(documents))

    def _fetch_istio_api(self, target: Path, log: Path) -> None:
        # Only the VirtualService CRD: the Istio router reads and writes nothing else, and the
        # apiserver then checks every write against Istio's own schema.
        module = self._go_module_dir("istio-api", f"istio.io/api@{self.versions.istio_api}", log)
        crds = module / "kubernetes" / "customresourcedefinitions.gen.yaml"
        if not crds.is_file():
            raise ToolchainError(
                f"istio-api: no {crds.name} in istio.io/api@{self.versions.istio_api}; see {log}"
            )
        documents = re.split(r"(?m)^---\s*$", crds.read_text())
        wanted = [
            d for d in documents if re.search(r"(?m)^  name: virtualservices\.networking\.istio\.io\s*$", d)
        ]
        if len(wanted) != 1:
            raise ToolchainError(
                f"istio-api: no virtualservices.networking.istio.io CRD in {crds}; see {log}"
            )
        (target / ISTIO_CRD_FILE).write_text(wanted[0].strip() + "\n")

    # ------------------------------------------------------------------------- real-node recipes
    def _build_kubelet(self, target: Path, log: Path) -> None:
        # The same wrapper module and GOCACHE as the control plane: only the kubelet's own packages
        # (and kube-proxy's) are compiled on top of a built control plane.
        module_dir = self.root / "tools" / "k8s"
        if f"k8s.io/kubernetes {self.versions.kubernetes}" not in (module_dir / "go.mod").read_text():
            self.regenerate_kubernetes_module(log)
        commands = [f"k8s.io/kubernetes/cmd/{c}" for c in ("kubelet", "kube-proxy")]
        build = ["go", "build", "-v", "-ldflags", self._go_version_ldflags(), "-o", f"{target}/"]
        self._run("kubelet", [*build, *commands], log, cwd=module_dir)

    def _build_kube_state_metrics(self, target: Path, log: Path) -> None:
        # A wrapper module (tools/kube-state-metrics), as for etcd: `go install module@version` asks
        # the proxy for the module's version list first, which it refuses for this one.
        v = self.versions.kube_state_metrics
        module_dir = self.root / "tools" / "kube-state-metrics"
        module = "k8s.io/kube-state-metrics/v2"
        if f"{module} {v}" not in (module_dir / "go.mod").read_text():
            self._run(
                "kube-state-metrics", ["go", "mod", "edit", f"-require={module}@{v}"], log, cwd=module_dir
            )
            self._run("kube-state-metrics", ["go", "mod", "tidy"], log, cwd=module_dir)
        flags = f"-s -w -X github.com/prometheus/common/version.Version={v.lstrip('v')}"
        output = str(target / "kube-state-metrics")
        build = ["go", "build", "-v", "-ldflags", flags, "-o", output, module]
        self._run("kube-state-metrics", build, log, cwd=module_dir)

    def _build_containerd(self, target: Path, log: Path) -> None:
        files = {f"usr/bin/{f}": f for f in ("containerd", "containerd-shim-runc-v2", "ctr")}
        self._extract_deb("containerd", self.versions.containerd_deb, files, target, log)

    def _build_runc(self, target: Path, log: Path) -> None:
        # runc links libseccomp2, which every Debian has (apt itself depends on it).
        self._extract_deb("runc", self.versions.runc_deb, {"usr/sbin/runc": "runc"}, target, log)

    def _build_cni_plugins(self, target: Path, log: Path) -> None:
        files = {f"usr/lib/cni/{p}": p for p in CNI_PLUGINS}
        self._extract_deb("containernetworking-plugins", self.versions.cni_plugins_deb, files, target, log)

    def _extract_libraries(
        self, name: str, packages: Sequence[str], root: Path, target: Path, log: Path
    ) -> None:
        """Debian ``packages`` (current versions) fetched in one apt-get call and extracted into ``root``."""
        download = target / "libraries"
        download.mkdir()
        self._run(name, ["apt-get", "download", *packages], log, cwd=download, env=dict(os.environ))
        for deb in sorted(download.glob("*.deb")):
            self._run(name, ["dpkg-deb", "-x", str(deb), str(root)], log, env=dict(os.environ))
        shutil.rmtree(download)

    def _build_iptables(self, target: Path, log: Path) -> None:
        """iptables and its libraries extracted into ``root/``, with one wrapper per command.

        Installing the package would be simpler, but its alternatives and the libraries would
        change the machine for everyone; extracted, it is one folder in the cache.
        """
        root = target / "root"
        self._extract_deb("iptables", self.versions.iptables_deb, {"usr": "root/usr"}, target, log)
        # The libraries' versions follow iptables' (its Depends pin the ones built with it): the
        # current ones, fetched in one apt-get call (one call each took a minute and a half).
        self._extract_libraries("iptables", IPTABLES_LIBRARIES, root, target, log)
        for command in IPTABLES_COMMANDS:
            wrapper = target / command
            wrapper.write_text(_IPTABLES_WRAPPER)
            wrapper.chmod(0o755)

    def _build_pause(self, target: Path, log: Path) -> None:
        module_dir = self.root / "tools" / "pause"
        build = ["go", "build", "-v", "-ldflags", "-s -w", "-o", str(target / "pause"), "."]
        self._run("pause", build, log, cwd=module_dir)

    def _build_busybox(self, target: Path, log: Path) -> None:
        files = {"bin/busybox": "busybox"}
        self._extract_deb("busybox-static", self.versions.busybox_deb, files, target, log)

    def _build_prometheus_k8s_sd(self, target: Path, log: Path) -> None:
        module_dir = self.root / "tools" / "prometheus"
        module = "github.com/prometheus/prometheus"
        v = self.versions.prometheus_k8s_sd
        if f"{module} {v}" not in (module_dir / "go.mod").read_text():
            self._run(
                "prometheus-k8s-sd", ["go", "mod", "edit", f"-require={module}@{v}"], log, cwd=module_dir
            )
            self._run("prometheus-k8s-sd", ["go", "mod", "tidy", "-e"], log, cwd=module_dir)
        source = Path(self._go_module_dir("prometheus-k8s-sd", f"{module}@{v}", log))
        version = (source / "VERSION").read_text().strip()
        flags = f"-s -w -X github.com/prometheus/common/version.Version={version}"
        build = ["go", "build", "-v", "-tags", "remove_all_sd,enable_kubernetes_sd", "-ldflags", flags]
        build += ["-o", str(target / "prometheus"), f"{module}/cmd/prometheus"]
        self._run("prometheus-k8s-sd", build, log, cwd=module_dir)

    def _build_debian_base(self, target: Path, log: Path) -> None:
        """A minbase rootfs from Debian's mirror by mmdebstrap (about 1 min), as a one-layer OCI image."""
        self._extract_deb(
            "mmdebstrap", self.versions.mmdebstrap_deb, {"usr/bin/mmdebstrap": "mmdebstrap"}, target, log
        )
        rootfs = target / "rootfs.tar"
        suite = self.versions.debian_base_suite
        build = [
            str(target / "mmdebstrap"),
            "--variant=minbase",
            "--mode=auto",  # root here; unshare or fakechroot for a user without it
            "--quiet",
            suite,
            str(rootfs),
        ]
        self._run("debian-base", build, log, env=dict(os.environ))
        reference = f"{DEBIAN_BASE_REPOSITORY}:{self.debian_base_tag()}"
        spec = images.ImageSpec(
            reference,
            {},
            (),
            cmd=["bash"],
            layer=rootfs,
            env=("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",),
        )
        images.write_archive(spec, target / DEBIAN_BASE_ARCHIVE)
        rootfs.unlink()
        (target / "mmdebstrap").unlink()

    def _build_buildah(self, target: Path, log: Path) -> None:
        """buildah and the libraries it links, extracted into ``root/``, behind one wrapper."""
        self._extract_deb("buildah", self.versions.buildah_deb, {"usr": "root/usr"}, target, log)
        self._extract_libraries("buildah", BUILDAH_LIBRARIES, target / "root", target, log)
        wrapper = target / "buildah"
        wrapper.write_text(_BUILDAH_WRAPPER)
        wrapper.chmod(0o755)
