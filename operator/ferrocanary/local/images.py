"""OCI image archives written without a daemon, for a real node's containerd to import.

Owns the on-disk format only: an OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256``)
in one tar, with one uncompressed layer built from files on this machine, a config naming the entry
point, and the reference in the annotations ``ctr images import`` reads. No registry is involved:
nothing here can reach one, so every image a node runs is written here or built locally and imported,
and pods name it with a non-``latest`` tag and ``imagePullPolicy: IfNotPresent`` or ``Never``.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"

# The pods' sandbox image (containerd's ``sandbox_image``) and the smoke-test image.
PAUSE_IMAGE = "ferrocanary.local/pause:3.10-ferrocanary"
BUSYBOX_IMAGE = "ferrocanary.local/busybox:1.35.0"
BUSYBOX_APPLETS = ("sh", "ls", "cat", "sleep", "httpd", "tail", "echo", "env", "kill", "ps", "mkdir")


@dataclass(frozen=True)
class ImageSpec:
    """An image of one layer: ``files`` maps a path in the image to a file on this machine, or
    ``layer`` is a root filesystem's tar (the Debian base)."""

    reference: str
    files: Mapping[str, Path]
    entrypoint: Sequence[str]
    cmd: Sequence[str] = ()
    symlinks: Mapping[str, str] = field(default_factory=dict)  # path in the image -> link target
    env: Sequence[str] = ("PATH=/bin:/usr/bin",)
    layer: Path | None = None  # a whole root filesystem as a tar (then ``files`` is empty)


def _layer(spec: ImageSpec) -> bytes:
    if spec.layer is not None:
        return spec.layer.read_bytes()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directories = sorted(
            {str(Path(p).parent) for p in [*spec.files, *spec.symlinks] if str(Path(p).parent) != "."}
        )
        for directory in directories:
            info = tarfile.TarInfo(directory.lstrip("/"))
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for inside, source in sorted(spec.files.items()):
            data = source.read_bytes()
            info = tarfile.TarInfo(inside.lstrip("/"))
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
        for inside, target in sorted(spec.symlinks.items()):
            info = tarfile.TarInfo(inside.lstrip("/"))
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
            tar.addfile(info)
    return buffer.getvalue()


def _blob(tar: tarfile.TarFile, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
    return f"sha256:{digest}"


def _json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def write_archive(spec: ImageSpec, path: Path) -> str:
    """Write ``spec`` as an OCI archive at ``path``; return the manifest's digest."""
    layer = _layer(spec)
    layer_digest = f"sha256:{hashlib.sha256(layer).hexdigest()}"
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": list(spec.entrypoint), "Cmd": list(spec.cmd), "Env": list(spec.env)},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        # One entry per layer: an image built FROM this one (buildah) counts its history's
        # non-empty entries against its layers and refuses to commit when they differ.
        "history": [{"created_by": f"ferrocanary.local.images: {spec.reference}"}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        _blob(tar, layer)
        config_bytes = _json(config)
        config_digest = _blob(tar, config_bytes)
        manifest = _json(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
                "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer)}],
            }
        )
        manifest_digest = _blob(tar, manifest)
        _, _, tag = spec.reference.rpartition(":")
        index = {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "annotations": {
                        "io.containerd.image.name": spec.reference,
                        "org.opencontainers.image.ref.name": tag,
                    },
                }
            ],
        }
        for name, data in (
            ("oci-layout", _json({"imageLayoutVersion": "1.0.0"})),
            ("index.json", _json(index)),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return manifest_digest


def pause_image(pause: Path) -> ImageSpec:
    return ImageSpec(PAUSE_IMAGE, {"/pause": pause}, ["/pause"])


def busybox_image(busybox: Path) -> ImageSpec:
    """One static busybox and a link per applet the node's tests use."""
    links = {f"/bin/{applet}": "busybox" for applet in BUSYBOX_APPLETS}
    # No entry point: a pod's ``command``/``args`` run as given, ``sh`` by default.
    return ImageSpec(BUSYBOX_IMAGE, {"/bin/busybox": busybox}, (), cmd=["/bin/sh"], symlinks=links)
