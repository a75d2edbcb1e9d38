"""The HSA classification tasks: samples and batches carry the right hierarchies, hsa and flat models have
equal parameters, the multimodal label needs both modalities, and training resumes exactly."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from geoattn.hierarchy import DOMAINS
from geoattn.train import resolve_config
from geoattn.train.tasks.hsa_classification import (
    HsaClassifier,
    SampleTree,
    collate,
    count_parameters,
    run_comparison,
)
from geoattn.train.tasks.hsa_multimodal import PhraseDigitPairs, digit_patches, pair_sample, xor_label
from geoattn.train.tasks.hsa_text import document_tree

DATA = Path(os.environ.get("GEOATTN_TEXT_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")
needs_sst = pytest.mark.skipif(not (DATA / "sst").is_dir(), reason=f"SST not found under {DATA}")
# Tiny data and model for every experiment (sizes the smoke runs use).
TINY_HSA = [
    f"data.root={DATA}",
    "data.limit=120",
    "data.batch_size=8",
    "model.d_model=16",
    "model.nhead=2",
    "model.num_layers=1",
]
TINY_MULTIMODAL = ["data.train_pairs=32", "data.val_pairs=16", "data.test_pairs=16"]


def test_document_tree_nests_words_in_sentences() -> None:
    sample = document_tree([np.array([5, 6, 7]), np.array([8]), np.array([9, 10])], label=1)
    h = sample.hierarchy()
    assert (h.num_tokens, h.num_nodes, h.depth) == (6, 6 + 3 + 1, 2)
    assert h.parent.tolist() == [6, 6, 6, 7, 8, 8, 9, 9, 9, -1]
    assert h.coord[:, 0].tolist() == [0, 1, 2, 0, 0, 1, 0, 1, 2, 0]
    assert sample.tokens.tolist() == [5, 6, 7, 8, 9, 10] and sample.label == 1


def test_collate_pads_and_builds_both_hierarchies() -> None:
    a = document_tree([np.array([2, 3]), np.array([4])], label=0)
    b = document_tree([np.array([5, 6, 7, 8, 9])], label=1)
    batch = collate([a, b], multiple_of=4)
    assert batch["tokens"].tolist() == [[2, 3, 4, 0, 0, 0, 0, 0], [5, 6, 7, 8, 9, 0, 0, 0]]
    assert batch["mask"].sum(1).tolist() == [3, 5] and batch["label"].tolist() == [0, 1]
    tree, flat = batch["tree"], batch["flat"]
    assert tree.num_tokens == flat.num_tokens == 16 and tree.num_trees == flat.num_trees == 2
    assert tree.token_mask.tolist() == batch["mask"].flatten().tolist()
    assert flat.depth == 1 and tree.depth == 2
    # each sample's tree is its own, shifted into its slots
    assert tree.leaf_count[tree.roots].tolist() == [3, 5]


def test_hsa_and_flat_differ_only_in_the_hierarchy() -> None:
    torch.manual_seed(0)
    samples = [document_tree([np.arange(2, 6), np.arange(6, 9)], label=0)] * 2
    batch = collate(samples)
    hsa = HsaClassifier(16, attention="hsa", d_model=16, nhead=2, dropout=0.0).eval()
    flat = HsaClassifier(16, attention="flat", d_model=16, nhead=2, dropout=0.0).eval()
    flat.load_state_dict(hsa.state_dict())  # same parameter names and shapes
    assert count_parameters(hsa) == count_parameters(flat)
    with torch.no_grad():
        out_hsa, out_flat = hsa(batch), flat(batch)
        assert not torch.allclose(out_hsa, out_flat)  # the tree matters
        hsa_on_flat = hsa({**batch, "tree": batch["flat"]})
    torch.testing.assert_close(hsa_on_flat, out_flat)
    with pytest.raises(ValueError, match="attention"):
        HsaClassifier(16, attention="dense")  # type: ignore[arg-type]


@needs_sst
@pytest.mark.parametrize("name", ["imdb", "sst", "multimodal"])
def test_hsa_and_flat_models_have_equal_parameters(
    name: str, compose_train: Callable[..., DictConfig]
) -> None:
    if name == "imdb" and not (DATA / "imdb").is_dir():
        pytest.skip(f"IMDB not found under {DATA}")
    counts = {}
    for attention in ("hsa", "flat"):
        resolved = resolve_config(
            compose_train(f"experiment=hsa/{name}", f"model.attention={attention}", tiny=False)
        )
        model = instantiate(resolved["model"])
        assert model.attention == attention
        counts[attention] = count_parameters(model)
    assert counts["hsa"] == counts["flat"] > 1_000_000  # the full-size models: d=64 and a 20-30k vocabulary


def test_the_label_needs_both_modalities() -> None:
    sentiment, parity = np.meshgrid([0, 1], [0, 1])
    label = np.asarray(xor_label(sentiment, parity))
    assert label.tolist() == [[0, 1], [1, 0]]
    # flipping either factor flips the label, whatever the other is: neither determines it alone
    assert np.all(np.asarray(xor_label(1 - sentiment, parity)) != label)
    assert np.all(np.asarray(xor_label(sentiment, 1 - parity)) != label)
    assert [xor_label(s, p) for s in (0, 1) for p in (0, 1)] == [0, 1, 1, 0]


@needs_sst
def test_pairs_are_balanced_so_each_modality_alone_is_at_chance() -> None:
    data = PhraseDigitPairs(DATA, train_pairs=3000, val_pairs=400, test_pairs=8, batch_size=500)
    sentiment, parity, label, kind = data.factors["train"].T
    pairs = kind == 0
    assert (label[pairs] == sentiment[pairs] ^ parity[pairs]).all()
    for factor in (sentiment, parity):
        for value in (0, 1):
            assert abs(label[pairs & (factor == value)].mean() - 0.5) < 0.05
    # solo training samples: the rule with the absent modality counted as negative / even
    assert (label[kind == 1] == sentiment[kind == 1]).all() and (label[kind == 2] == parity[kind == 2]).all()
    assert abs((kind > 0).mean() - 0.3) < 0.05
    assert (data.factors["val"][:, 3] == 0).all() and (data.factors["test"][:, 3] == 0).all()
    labels = torch.cat([b["label"] for b in data.train_batches(torch.Generator().manual_seed(0))])
    assert sorted(labels.tolist()) == sorted(label.tolist())


def test_a_multimodal_sample_spans_a_sequence_and_a_grid() -> None:
    text = document_tree([np.array([3, 4, 5])], label=1)
    image = np.arange(64, dtype=np.float32).reshape(8, 8) % 17
    patches = digit_patches(image)
    assert patches.shape == (16, 4) and patches[1].tolist() == [v / 16 for v in (2, 3, 10, 11)]
    sample = pair_sample(text, patches, 1, text_positions=8)
    h = sample.hierarchy()
    assert h.num_tokens == 3 + 16 and h.num_nodes == 19 + 1 + 1 + 4 + 1
    names = [DOMAINS[d] for d in h.domain[19:].tolist()]
    assert names == ["sequence", "grid", "grid", "grid", "grid", "grid", "set"]
    assert sample.modality.tolist() == [1] * 3 + [2] * 16
    assert sample.positions.tolist() == [0, 1, 2, *range(8, 24)]
    # patch (row 1, col 2) sits in quadrant 1 (top right) at (1, 0)
    patch = 3 + 1 * 4 + 2
    assert h.parent[patch].item() == 19 + 2 + 1 and h.coord[patch].tolist() == [1, 0]
    text_only = pair_sample(text, None, 1, text_positions=8)
    image_only = pair_sample(None, patches, 1, text_positions=8)
    assert (
        isinstance(text_only, SampleTree) and text_only.num_tokens == 3 and text_only.hierarchy().depth == 1
    )
    assert image_only.num_tokens == 16 and image_only.hierarchy().depth == 2


@needs_sst
def test_single_modality_data_holds_one_modality() -> None:
    kw = {"train_pairs": 16, "val_pairs": 8, "test_pairs": 8, "limit": 60}
    text = PhraseDigitPairs(DATA, modalities=["text"], **kw)
    image = PhraseDigitPairs(DATA, modalities=["image"], **kw)
    for data, shown in ((text, 1), (image, 2)):
        for batch in data.train_batches(torch.Generator()):
            assert set(batch["modality"].unique().tolist()) <= {0, shown}
            assert batch["mask"].any(1).all()  # no sample is empty
        assert (
            data.factors["train"][:, 3] != 3 - shown
        ).all()  # the other modality's solo samples are left out
    with pytest.raises(ValueError, match="modalities"):
        PhraseDigitPairs(DATA, modalities=["audio"], **kw)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One CPU thread: with more, some CPU kernels sum in varying order (differences ~1e-10 after a resume)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@needs_sst
@pytest.mark.usefixtures("one_thread")
def test_sst_training_resumes_exactly(
    assert_resume_matches: Callable[..., dict[str, dict[str, torch.Tensor]]],
) -> None:
    states = assert_resume_matches("experiment=hsa/sst", *TINY_HSA, total=3, first=1)
    assert not torch.equal(states["first"]["words.weight"], states["straight"]["words.weight"])


@needs_sst
@pytest.mark.usefixtures("one_thread")
def test_multimodal_training_resumes_exactly(
    assert_resume_matches: Callable[..., dict[str, dict[str, torch.Tensor]]],
) -> None:
    assert_resume_matches(
        "experiment=hsa/multimodal", *TINY_HSA, *TINY_MULTIMODAL, "model.attention=flat", total=3, first=2
    )


@needs_sst
@pytest.mark.usefixtures("one_thread")
def test_run_comparison_skips_finished_runs_and_resumes_interrupted_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    variants = {"flat": ["model.attention=flat"]}
    tiny = [*TINY_HSA, "trainer.val_every=2", "trainer.ckpt_every=2"]
    first = run_comparison(
        "hsa/sst", variants, [0], tmp_path, overrides=[*tiny, "trainer.max_steps=2"], device="cpu"
    )
    assert [(r["steps"], r["resumed"]) for r in first] == [(2, False)]
    (tmp_path / "results.jsonl").unlink()  # as if the run had been interrupted after its checkpoint
    second = run_comparison(
        "hsa/sst", variants, [0], tmp_path, overrides=[*tiny, "trainer.max_steps=4"], device="cpu"
    )
    assert [(r["steps"], r["resumed"]) for r in second] == [(4, True)]
    third = run_comparison(
        "hsa/sst", variants, [0], tmp_path, overrides=[*tiny, "trainer.max_steps=4"], device="cpu"
    )
    assert third == second and "flat seed 0: already in" in capsys.readouterr().out


def test_comparison_table_flags_runs_cut_by_the_time_limit() -> None:
    from geoattn.train.tasks.hsa_classification import comparison_table

    def row(variant: str, seed: int, steps: int, test: float) -> dict[str, object]:
        return {
            "variant": variant, "seed": seed, "steps": steps, "max_steps": 100, "params": 10,
            "train_seconds": 1.0, "val_accuracy": test, "test_accuracy": test,
        }  # fmt: skip

    full = [row("hsa", 0, 100, 0.8), row("flat", 0, 100, 0.7)]
    table = comparison_table(full, ["hsa", "flat"], "t")
    assert "HSA - flat: +10.00 points" in table and "time limit" not in table
    cut = comparison_table([row("hsa", 0, 100, 0.8), row("flat", 0, 40, 0.7)], ["hsa", "flat"], "t")
    assert "Stopped at the time limit before max_steps (100):** flat seed 0." in cut
    assert "equal-time comparison" in cut
