"""The pruning rules as pure functions, on baselines made in code (judging/prune.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from comfytest.errors import BaselineError
from comfytest.judging.baselines import BaselineStore
from comfytest.judging.compare import Tolerance
from comfytest.judging.manifest import read_manifest, write_manifest
from comfytest.judging.prune import CaseFileRun, delete_unused, unused_baselines


def made(tmp_path: Path, folder: str, keys: list[str], case: str) -> BaselineStore:
    """Baselines for ``keys`` in ``folder``, written as an update run writes them."""
    store = BaselineStore(tmp_path / "baselines", tmp_path / "results", "missing")
    for index, key in enumerate(keys):
        if key.endswith("-t0"):
            store.judge_text(folder, key, key, f"text {index}", Tolerance())
        else:
            image = Image.new("RGB", (8, 8), (index * 40, 20, 30))
            store.judge(folder, key, key, image, Tolerance())
    write_manifest(store.root, folder, {"case": case}, keys)
    return store


def test_only_outputs_of_complete_owners_in_their_own_folder_are_unused(tmp_path: Path) -> None:
    store = made(tmp_path, "t/fox", ["9-0", "9-1", "7-t0"], "cases/t.yaml::fox")
    made(tmp_path, "u/cat", ["9-0"], "cases/u.yaml::cat")
    # A copy of t's folder elsewhere: its manifest names cases/t.yaml, its folder is not t/.
    made(tmp_path, "backup/fox", ["9-0"], "cases/t.yaml::fox")
    (store.root / "t/fox/notes.png").write_bytes((store.root / "t/fox/9-0.png").read_bytes())
    files = [
        CaseFileRun("cases/t.yaml", "t", complete=True),
        CaseFileRun("cases/u.yaml", "u", complete=False),
    ]
    judged = {("t/fox", "9-0")}
    found = unused_baselines(store.root, files, judged, {"t/fox"}, set())
    assert [(u.path.relative_to(store.root).as_posix(), u.reason) for u in found] == [
        ("t/fox/7-t0.txt", "cases/t.yaml::fox no longer has output 7-t0"),
        ("t/fox/9-1.png", "cases/t.yaml::fox no longer has output 9-1"),
    ]
    assert unused_baselines(store.root, files, set(), set(), {"t/fox"}) == [], "judged nothing"

    deleted = delete_unused(store.root, found)
    assert [d.path.name for d in deleted] == ["7-t0.txt", "9-1.png"]
    assert sorted(p.name for p in (store.root / "t/fox").iterdir()) == [
        "9-0.png",
        "manifest.json",
        "notes.png",
    ]
    assert list((read_manifest(store.root, "t/fox") or {})["outputs"]) == ["9-0"]


def test_a_file_changed_since_comfytest_wrote_it_is_kept(tmp_path: Path) -> None:
    store = made(tmp_path, "t/fox", ["9-0", "7-t0"], "cases/t.yaml::fox")
    Image.new("RGB", (8, 8), (1, 2, 3)).save(store.root / "t/fox/9-0.png")
    (store.root / "t/fox/7-t0.txt").write_text("edited")
    files = [CaseFileRun("cases/t.yaml", "t", complete=True)]
    found = unused_baselines(store.root, files, set(), set(), set())
    assert [u.prunable for u in found] == [False, False]
    assert delete_unused(store.root, found) == []
    assert len(list((store.root / "t/fox").iterdir())) == 3


def test_a_folder_is_checked_against_its_manifest_owner(tmp_path: Path) -> None:
    store = made(tmp_path, "smoke/fox", ["9-0"], "cases/smoke.yml::fox")
    store.check_owner("smoke/fox", "cases/smoke.yaml::fox")  # smoke.yml is gone: adopted
    (tmp_path / "cases").mkdir()
    (tmp_path / "cases/smoke.yml").write_text("cases: []\n")
    with pytest.raises(BaselineError, match=r"belongs to cases/smoke.yml::fox"):
        store.check_owner("smoke/fox", "cases/smoke.yaml::fox")
    store.check_owner("smoke/fox", "cases/smoke.yml::fox")
    manifest = json.loads((store.root / "smoke/fox/manifest.json").read_text())
    assert manifest["case"] == "cases/smoke.yml::fox"
