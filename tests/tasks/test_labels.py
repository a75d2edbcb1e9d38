"""Labelled datasets: parallel labels equal serial ones, the on-disk cache round-trips and is used."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from geoattn.tasks import (
    cache_path,
    compute_labels,
    convex_hull_label,
    delaunay_label,
    euclidean_distance_matrix,
    held_karp,
    labelled_dataset,
    uniform_points,
)
from geoattn.tasks import labels as labels_module


def test_parallel_labels_equal_serial_ones() -> None:
    points = uniform_points(16, 12, seed=3)  # 8 chunks of 2 over 2 spawned processes
    serial = compute_labels("tsp", points, workers=1)
    parallel = compute_labels("tsp", points, workers=2)
    assert len(parallel) == 16
    assert all(np.array_equal(a, b) for a, b in zip(serial, parallel, strict=True))


def test_labels_are_the_task_functions() -> None:
    data = labelled_dataset("delaunay", 9, 4, seed=1, workers=1)
    for p, label in zip(data.points.numpy(), data.labels, strict=True):
        assert np.array_equal(label.numpy(), delaunay_label(p))
    tsp = labelled_dataset("tsp", 8, 3, seed=1, workers=1)
    assert tsp.tsp_solver == "held_karp"
    for p, label in zip(tsp.points.numpy(), tsp.labels, strict=True):
        assert np.array_equal(label.numpy(), held_karp(euclidean_distance_matrix(p))[0])


def test_cache_round_trip_and_reuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = labelled_dataset("convex_hull", 10, 6, seed=7, cache_dir=tmp_path, workers=1)
    assert not first.from_cache
    path = cache_path(tmp_path, "convex_hull", 10, 6, 7)
    assert path.name == "convex_hull-n10-count6-seed7-v2.npz"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp file left behind

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("labels were recomputed instead of read from the cache")

    monkeypatch.setattr(labels_module, "compute_labels", fail)
    second = labelled_dataset("convex_hull", 10, 6, seed=7, cache_dir=tmp_path, workers=1)
    assert second.from_cache
    assert torch.equal(second.points, first.points)
    assert len(second.labels) == 6
    for p, a, b in zip(second.points.numpy(), first.labels, second.labels, strict=True):
        assert torch.equal(a, b)
        assert np.array_equal(b.numpy(), convex_hull_label(p))
    # Another seed is another key.
    with pytest.raises(AssertionError, match="recomputed"):
        labelled_dataset("convex_hull", 10, 6, seed=8, cache_dir=tmp_path, workers=1)


def test_delaunay_cache_keeps_triangle_shapes(tmp_path: Path) -> None:
    first = labelled_dataset("delaunay", 7, 3, seed=2, cache_dir=tmp_path, workers=1)
    second = labelled_dataset("delaunay", 7, 3, seed=2, cache_dir=tmp_path, workers=1)
    assert second.from_cache
    assert all(
        b.dim() == 2 and b.shape[1] == 3 and torch.equal(a, b)
        for a, b in zip(first.labels, second.labels, strict=True)
    )
    padded = second.padded_labels()
    assert padded.shape == (3, max(len(x) for x in second.labels), 3)


def test_corrupt_or_foreign_cache_is_recomputed(tmp_path: Path) -> None:
    data = labelled_dataset("tsp", 6, 2, seed=0, cache_dir=tmp_path, workers=1)
    path = cache_path(tmp_path, "tsp", 6, 2, 0)
    assert path.name == "tsp-n6-count2-seed0-heldkarp-v2.npz"
    path.write_bytes(b"truncated")
    with pytest.warns(UserWarning, match=r"label cache .* is unusable .*; recomputing it"):
        again = labelled_dataset("tsp", 6, 2, seed=0, cache_dir=tmp_path, workers=1)
    assert not again.from_cache and torch.equal(torch.stack(again.labels), torch.stack(data.labels))
    assert labelled_dataset("tsp", 6, 2, seed=0, cache_dir=tmp_path, workers=1).from_cache  # rewritten
    # A file holding another key (here: another seed) under this key's name is not trusted.
    other = cache_path(tmp_path, "tsp", 6, 2, 1)
    labelled_dataset("tsp", 6, 2, seed=1, cache_dir=tmp_path, workers=1)
    other.replace(path)
    with pytest.warns(UserWarning, match=r"its key .* is not"):
        assert not labelled_dataset("tsp", 6, 2, seed=0, cache_dir=tmp_path, workers=1).from_cache


def test_cache_holds_small_labels_and_checks_the_points_it_draws_again(tmp_path: Path) -> None:
    data = labelled_dataset("tsp", 8, 5, seed=3, cache_dir=tmp_path, workers=1)
    path = cache_path(tmp_path, "tsp", 8, 5, 3)
    with np.load(path) as stored:
        assert "points" not in stored and stored["values"].dtype == np.int16
        arrays = {name: stored[name] for name in stored.files}
    again = labelled_dataset("tsp", 8, 5, seed=3, cache_dir=tmp_path, workers=1)
    assert again.from_cache and torch.equal(again.points, data.points)
    assert all(x.dtype == torch.int64 for x in again.labels)
    # Points that no longer hash as written (another generator, say) make the file unusable, not wrong.
    meta = json.loads(str(arrays["meta"]))
    arrays["meta"] = np.array(json.dumps({**meta, "points_sha256": "0" * 64}, sort_keys=True))
    np.savez(path, **arrays)
    with pytest.warns(UserWarning, match="do not hash as when it was written"):
        assert not labelled_dataset("tsp", 8, 5, seed=3, cache_dir=tmp_path, workers=1).from_cache


def test_lkh_is_part_of_the_key(tmp_path: Path) -> None:
    assert cache_path(tmp_path, "tsp", 20, 5, 0).name == "tsp-n20-count5-seed0-lkh10-v2.npz"
    assert cache_path(tmp_path, "tsp", 20, 5, 0, lkh_runs=3).name == "tsp-n20-count5-seed0-lkh3-v2.npz"
    assert cache_path(tmp_path, "tsp", 10, 5, 0, tsp_solver="lkh").name == "tsp-n10-count5-seed0-lkh10-v2.npz"


def test_bad_arguments() -> None:
    with pytest.raises(
        ValueError, match=r"task must be one of \['convex_hull', 'delaunay', 'tsp'\], got 'sort'"
    ):
        labelled_dataset("sort", 5, 1, seed=0)
    with pytest.raises(ValueError, match=r"tsp solver must be 'auto', 'held_karp' or 'lkh', got 'concorde'"):
        labelled_dataset("tsp", 5, 1, seed=0, tsp_solver="concorde")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"workers must be >= 1, got 0"):
        compute_labels("tsp", uniform_points(2, 5, seed=0), workers=0)
