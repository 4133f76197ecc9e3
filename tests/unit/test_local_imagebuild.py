"""The project images' cache key and build context, read without building (the builds: test_real_node)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ferrocanary.local import imagebuild
from ferrocanary.local.toolchain import Toolchain

REPO = Toolchain().root


def _copy_of_the_repository(tmp_path: Path) -> Toolchain:
    """The files the recipes read, in a scratch checkout whose files a test may change."""
    root = tmp_path / "repo"
    for recipe in imagebuild.RECIPES:
        for entry in (recipe.dockerfile, *recipe.context):
            source, target = REPO / entry, root / entry
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            else:
                shutil.copy2(source, target)
    shutil.copytree(REPO / "tools", root / "tools", dirs_exist_ok=True)
    return Toolchain(root)


def _references(toolchain: Toolchain, tmp_path: Path) -> dict[str, str]:
    builder = imagebuild.ImageBuilder(toolchain, tmp_path / "images")
    return {recipe.name: builder.reference(recipe) for recipe in imagebuild.RECIPES}


def test_every_image_is_tagged_by_a_hash_of_its_inputs_never_latest(tmp_path: Path) -> None:
    references = _references(Toolchain(), tmp_path)
    assert references["operator"].startswith("ferrocanary.local/ferrocanary:0.1.0-")
    assert references["textscore-rust"].startswith("ferrocanary.local/textscore:rust-")
    for reference in references.values():
        assert re.fullmatch(r"ferrocanary\.local/[a-z]+:[0-9a-z.-]+-[0-9a-f]{12}", reference), reference
    # The same inputs give the same tags (a second run finds its archives).
    assert _references(Toolchain(), tmp_path) == references


def test_a_changed_source_file_rebuilds_its_image_and_only_the_images_built_from_it(tmp_path: Path) -> None:
    toolchain = _copy_of_the_repository(tmp_path)
    before = _references(toolchain, tmp_path)
    core = next((toolchain.root / "workloads" / "textscore-core" / "src").glob("*.rs"))
    core.write_text(core.read_text() + "\n// changed\n")
    after = _references(toolchain, tmp_path)
    assert after["textscore-rust"] != before["textscore-rust"]
    assert {k: v for k, v in after.items() if k != "textscore-rust"} == {
        k: v for k, v in before.items() if k != "textscore-rust"
    }
    # A base's change reaches every image built on it, through its reference.
    dockerfile = toolchain.root / "tools" / "images" / "python-base.Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "\n# changed\n")
    rebased = _references(toolchain, tmp_path)
    for name in ("python-base", "operator", "textscore-python", "textscore-rust"):
        assert rebased[name] != after[name], name
    assert rebased["rust-base"] == after["rust-base"]


def test_caches_and_build_output_stay_out_of_the_context_and_the_key(tmp_path: Path) -> None:
    toolchain = _copy_of_the_repository(tmp_path)
    builder = imagebuild.ImageBuilder(toolchain, tmp_path / "images")
    (recipe,) = (r for r in imagebuild.RECIPES if r.name == "textscore-rust")
    before = builder.reference(recipe)
    for junk in (
        "workloads/textscore-native/target/release/libtextscore_native.so",
        "workloads/textscore/textscore/__pycache__/service.cpython-311.pyc",
        "workloads/textscore/textscore.egg-info/PKG-INFO",
    ):
        path = toolchain.root / junk
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("build output")
    assert builder.reference(recipe) == before
    inside = [name for name, _ in builder.context_files(recipe)]
    assert "workloads/Dockerfile.rust" in inside
    assert "Cargo.lock" in inside
    assert not [n for n in inside if "target/" in n or "__pycache__" in n or ".egg-info" in n]
