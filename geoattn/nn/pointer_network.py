r"""Pointer networks (Vinyals et al. 2015): an LSTM encoder-decoder whose outputs point at its inputs.

The network, its teacher-forced training forward and one decoder for greedy decoding, sampling and beam
search live here, together with the step masks that say which positions each step may point at:

- :class:`PermutationMask` — every input exactly once (TSP, sorting);
- :class:`CycleMask` — a cyclic subsequence, closed by repeating its first input (convex hull);
- :class:`FreeMask` — any inputs, optionally in groups (Delaunay triangulation: groups of 3).

Output positions. With ``eos=False`` the network points at its ``n`` inputs: position ``j`` is input
``j``. With ``eos=True`` it has ``m = n + 1`` positions: position 0 is the end-of-sequence token (a learned
key) and input ``j`` is position ``j + 1`` — the 1-based index convention of Vinyals et al.'s data files,
whose targets (``"... output 1 3 2 1"``, then end) map onto positions unchanged, with 0 for the end.

How the three tasks of the paper are expressed (targets are position sequences; pad with ``-1``):

==============  ==========  =====================================  ========================================
task            ``eos``     mask                                   a target for inputs 0..4 (``eos=True``)
==============  ==========  =====================================  ========================================
TSP             ``False``   ``PermutationMask()``                  ``[0, 3, 1, 4, 2]`` (``eos=False``)
convex hull     ``True``    ``CycleMask()``                        ``[1, 4, 2, 1, 0]``: hull 0, 3, 1, closed
Delaunay        ``True``    ``FreeMask(group_size=3)``             ``[1, 2, 3, 1, 3, 4, 0]``: two triangles
==============  ==========  =====================================  ========================================

TSP may also use ``eos=True`` (the end then comes after the last city) and
``PermutationMask(start=0, closed=True)`` for Vinyals' closed tours that start at the first city.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, get_args

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .pointer_attention import PointerAttention

__all__ = [
    "CycleMask",
    "Decoded",
    "DecodingState",
    "DecodingStrategy",
    "FreeMask",
    "PermutationMask",
    "PointerNetwork",
    "StepMask",
    "sequence_log_likelihood",
]

DecodingStrategy = Literal["greedy", "sample", "beam"]


@dataclass(frozen=True)
class DecodingState:
    r"""What a :class:`StepMask` sees: the choices made so far by every row (an instance, beam or sample).

    Attributes:
        valid: ``[R, m]`` bool, the positions that exist: inputs within the row's length, and the EOS
            position when there is one.
        lengths: ``[R]`` number of inputs of each row.
        counts: ``[R, m]`` how often each position was chosen so far.
        history: ``[R, t]`` the positions chosen at steps ``0 .. t-1``; ``-1`` after the row has finished.
        eos: the EOS position (``0``), or ``None`` for a network without one.
    """

    valid: torch.Tensor
    lengths: torch.Tensor
    counts: torch.Tensor
    history: torch.Tensor
    eos: int | None

    @classmethod
    def initial(cls, valid: torch.Tensor, lengths: torch.Tensor, eos: int | None) -> DecodingState:
        """The state before the first step: nothing chosen."""
        rows = valid.shape[0]
        empty = torch.empty(rows, 0, dtype=torch.long, device=valid.device)
        return cls(valid, lengths, torch.zeros_like(valid, dtype=torch.long), empty, eos)

    @property
    def step(self) -> int:
        """The number of steps taken, ``t``."""
        return int(self.history.shape[1])

    @property
    def offset(self) -> int:
        """Position of input 0: ``1`` with an EOS position, else ``0``."""
        return 0 if self.eos is None else 1

    @property
    def inputs(self) -> torch.Tensor:
        """``[R, m]`` bool: the valid positions that are inputs (``valid`` without the EOS position)."""
        if self.eos is None:
            return self.valid
        is_eos = torch.arange(self.valid.shape[1], device=self.valid.device) == self.eos
        return self.valid & ~is_eos

    @property
    def num_chosen(self) -> torch.Tensor:
        """``[R]`` the number of positions chosen so far (EOS included)."""
        return (self.history >= 0).sum(dim=1)

    @property
    def first(self) -> torch.Tensor:
        """``[R]`` the first chosen position, ``-1`` before the first step."""
        if self.step == 0:
            return torch.full_like(self.lengths, -1)
        return self.history[:, 0]

    @property
    def last(self) -> torch.Tensor:
        """``[R]`` the last chosen position, ``-1`` before the first step and after finishing."""
        if self.step == 0:
            return torch.full_like(self.lengths, -1)
        return self.history[:, -1]

    def advance(self, index: torch.Tensor) -> DecodingState:
        """The state after every row chose ``index`` ``[R]`` (``-1``: no choice, the row has finished)."""
        chosen = index >= 0
        hit = torch.nn.functional.one_hot(index.clamp(min=0), self.valid.shape[1]) * chosen[:, None]
        history = torch.cat([self.history, index[:, None]], dim=1)
        return DecodingState(self.valid, self.lengths, self.counts + hit, history, self.eos)

    def reorder(self, rows: torch.Tensor) -> DecodingState:
        """The state of rows ``rows`` ``[R']`` (beam search keeps the rows of the surviving beams)."""
        return DecodingState(
            self.valid[rows], self.lengths[rows], self.counts[rows], self.history[rows], self.eos
        )


class StepMask(ABC):
    r"""Which positions each decoding step may point at, and when a sequence is complete.

    A step mask is stateless: it reads a :class:`DecodingState`. The decoder additionally restricts every
    step to ``state.valid`` (never padding) and ends a row when :meth:`finished` says so or after
    ``max_steps`` steps. A row that is not finished but has no allowed position has no valid completion:
    it fails, with log-likelihood :math:`-\infty` (e.g. ``CycleMask`` on fewer than ``min_size`` inputs).
    Subclass it for other output languages.
    """

    @abstractmethod
    def allowed(self, state: DecodingState) -> torch.Tensor:
        """``[R, m]`` bool: the positions the next step may choose (only read for unfinished rows)."""

    def finished(self, state: DecodingState) -> torch.Tensor:
        """``[R]`` bool: whether a row is complete after its last choice. Default: it chose EOS."""
        if state.eos is None:
            return torch.zeros_like(state.lengths, dtype=torch.bool)
        return state.last == state.eos

    @abstractmethod
    def max_steps(self, n: int, eos: bool) -> int:
        """The most steps a sequence over ``n`` inputs can take (EOS included)."""

    def __call__(self, state: DecodingState) -> torch.Tensor:
        return self.allowed(state)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


def _with_eos(state: DecodingState, inputs: torch.Tensor, eos_ok: torch.Tensor) -> torch.Tensor:
    """``inputs`` ``[R, m]`` with the EOS column set to ``eos_ok`` ``[R]`` (no-op without EOS)."""
    if state.eos is None:
        return inputs
    is_eos = torch.arange(inputs.shape[1], device=inputs.device) == state.eos
    return torch.where(is_eos, eos_ok[:, None], inputs)


class PermutationMask(StepMask):
    r"""Every input exactly once: a permutation (TSP tours, sorting).

    Step :math:`t` may choose any input not chosen before. Without EOS the sequence ends after ``n``
    choices (``n + 1`` with ``closed``); with EOS, the EOS position is allowed — and the only choice —
    once the permutation (and the closing step) is complete.

    Args:
        start (int, optional): input index the first step must choose (e.g. ``0``: tours start at the
            first city, removing the ``n``-fold rotational symmetry); ``None``: any. (default: ``None``)
        closed (bool): after all inputs, choose the first one again (a closed tour). (default: ``False``)
    """

    def __init__(self, *, start: int | None = None, closed: bool = False) -> None:
        if start is not None and start < 0:
            raise ValueError(f"PermutationMask: start must be None or >= 0, got {start}")
        self.start = start
        self.closed = bool(closed)

    def allowed(self, state: DecodingState) -> torch.Tensor:
        chosen = state.num_chosen
        inputs = state.inputs & (state.counts == 0)
        if self.start is not None and state.step == 0:
            positions = torch.arange(inputs.shape[1], device=inputs.device)
            inputs = inputs & (positions == self.start + state.offset)
        done = chosen >= state.lengths
        if self.closed:
            closing = chosen == state.lengths
            is_first = torch.arange(inputs.shape[1], device=inputs.device) == state.first[:, None]
            inputs = torch.where(closing[:, None], is_first & state.inputs, inputs)
            done = chosen > state.lengths
        return _with_eos(state, inputs, done)

    def finished(self, state: DecodingState) -> torch.Tensor:
        if state.eos is not None:
            return super().finished(state)
        return state.num_chosen >= state.lengths + int(self.closed)

    def max_steps(self, n: int, eos: bool) -> int:
        return n + int(self.closed) + int(eos)


class CycleMask(StepMask):
    r"""A cyclic subsequence of the inputs, each at most once (convex hulls).

    With ``closed`` the cycle ends by choosing its first input again (allowed once at least ``min_size``
    inputs were chosen); then only EOS is allowed, or, without EOS, the sequence ends. Without ``closed``
    EOS ends the cycle (allowed after ``min_size`` inputs), or, without EOS, the cycle holds all inputs.

    Args:
        closed (bool): close the cycle by repeating its first input. (default: ``True``)
        min_size (int): the fewest distinct inputs before the cycle may end (3: a polygon).
            (default: ``3``)
    """

    def __init__(self, *, closed: bool = True, min_size: int = 3) -> None:
        if min_size < 1:
            raise ValueError(f"CycleMask: min_size must be >= 1, got {min_size}")
        self.closed = bool(closed)
        self.min_size = min_size

    def _is_closed(self, state: DecodingState) -> torch.Tensor:
        return (state.num_chosen >= 2) & (state.last == state.first) & (state.first >= 0)

    def allowed(self, state: DecodingState) -> torch.Tensor:
        chosen = state.num_chosen
        inputs = state.inputs & (state.counts == 0)
        if not self.closed:
            return _with_eos(state, inputs, chosen >= self.min_size)
        is_closed = self._is_closed(state)
        is_first = torch.arange(inputs.shape[1], device=inputs.device) == state.first[:, None]
        may_close = (chosen >= self.min_size)[:, None] & is_first & state.inputs
        inputs = (inputs | may_close) & ~is_closed[:, None]
        return _with_eos(state, inputs, is_closed)

    def finished(self, state: DecodingState) -> torch.Tensor:
        if state.eos is not None:
            return super().finished(state)
        if self.closed:
            return self._is_closed(state)
        return state.num_chosen >= state.lengths

    def max_steps(self, n: int, eos: bool) -> int:
        return n + int(self.closed) + int(eos)


class FreeMask(StepMask):
    r"""Any inputs, in groups of ``group_size``; EOS only between groups (Delaunay triangles: 3).

    Within a group an input appears at most once; over the whole sequence at most ``max_repeats`` times.
    EOS is allowed at a group boundary after at least one group. Without EOS the sequence runs to
    ``max_steps``.

    Args:
        group_size (int): outputs per group (``3`` for triangles). (default: ``1``)
        max_repeats (int, optional): how often an input may appear in all; ``None``: unbounded.
            (default: ``None``)
    """

    def __init__(self, *, group_size: int = 1, max_repeats: int | None = None) -> None:
        if group_size < 1:
            raise ValueError(f"FreeMask: group_size must be >= 1, got {group_size}")
        if max_repeats is not None and max_repeats < 1:
            raise ValueError(f"FreeMask: max_repeats must be None or >= 1, got {max_repeats}")
        self.group_size = group_size
        self.max_repeats = max_repeats

    def allowed(self, state: DecodingState) -> torch.Tensor:
        chosen = state.num_chosen
        inputs = state.inputs
        if self.max_repeats is not None:
            inputs = inputs & (state.counts < self.max_repeats)
        in_group = chosen % self.group_size
        positions = torch.arange(inputs.shape[1], device=inputs.device)
        for back in range(1, min(self.group_size, state.step + 1)):
            # Unfinished rows have no -1 in their history: history[:, -back] is their back-th last choice.
            same = positions == state.history[:, -back, None]
            inputs = inputs & ~(same & (in_group >= back)[:, None])
        return _with_eos(state, inputs, (in_group == 0) & (chosen >= self.group_size))

    def max_steps(self, n: int, eos: bool) -> int:
        per_input = 2 * self.group_size if self.max_repeats is None else self.max_repeats
        return n * per_input + int(eos)


class Decoded(NamedTuple):
    """Decoded sequences, best first.

    Attributes:
        sequences: ``[B, W, T]`` positions (``W`` beams or samples; 1 for greedy), ``-1`` after a
            sequence's end; ``T`` is the number of steps taken.
        log_likelihood: ``[B, W]`` :math:`\\sum_t \\log p(y_t \\mid y_{<t}, x)`, descending along ``W``;
            ``-inf`` for beams that found no sequence (fewer than ``W`` exist) and for rows whose mask
            allowed nothing before they finished; their sequences are all ``-1``.
        lengths: ``[B, W]`` the number of positions in each sequence (EOS included).
    """

    sequences: torch.Tensor
    log_likelihood: torch.Tensor
    lengths: torch.Tensor


def sequence_log_likelihood(log_probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    r""":math:`\sum_t \log p(y_t \mid y_{<t}, x)` over the non-padding steps (``targets >= 0``).

    Args:
        log_probs: ``[B, T, m]`` from :meth:`PointerNetwork.forward`.
        targets: ``[B, T]`` positions, ``-1`` (any negative) for padding.

    Returns:
        ``[B]``; the training loss is its negative mean.
    """
    keep = targets >= 0
    picked = log_probs.gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    return torch.where(keep, picked, torch.zeros_like(picked)).sum(dim=-1)


class _Encoding(NamedTuple):
    keys: torch.Tensor  # [B, m, A] projected pointer keys W_1 e_j
    choices: torch.Tensor  # [B, m, E] the decoder input after choosing each position
    state: tuple[torch.Tensor, torch.Tensor]  # LSTM (h, c), each [L, B, H]
    valid: torch.Tensor  # [B, m] bool
    lengths: torch.Tensor  # [B]


class PointerNetwork(nn.Module):
    r"""Pointer network (Vinyals, Fortunato, Jaitly 2015, "Pointer Networks", NeurIPS, arXiv:1506.03134).

    An LSTM encodes the embedded inputs :math:`x_1 \dots x_n` into states :math:`e_j`; an LSTM decoder,
    started from the encoder's final state with a learned input :math:`d_\text{start}`, is fed at each step
    the embedding of the input it pointed at last, and points with :class:`PointerAttention`:

    .. math::
        e_j = \operatorname{LSTM}_\text{enc}(W_x x_j),\qquad
        d_i = \operatorname{LSTM}_\text{dec}(W_x x_{y_{i-1}}),\qquad
        u_{ij} = v^\top \tanh(W_1 e_j + W_2 d_i),

        p(y_i = j \mid y_{<i}, x) = \operatorname{softmax}_{j \in A_i}(u_{ij}),

    with :math:`A_i` the positions a :class:`StepMask` allows at step :math:`i` (and never padding).
    With ``eos=True`` position 0 is an end-of-sequence token with a learned key :math:`e_0` (inputs move to
    positions :math:`1 \dots n`); the module docstring shows how convex hull, Delaunay and TSP outputs are
    expressed. Parameters start uniform in :math:`[-0.08, 0.08]`, as in the paper.

    Training: :meth:`forward` is teacher-forced (the decoder is fed the target's previous position) and
    returns log-probabilities for every step; :func:`sequence_log_likelihood` turns them into the
    sequence log-likelihood. Inference: :meth:`decode`, one decoder with greedy decoding, sampling and beam
    search as options.

    Args:
        input_dim (int): features per input :math:`x_j` (2 for points in the plane). (default: ``2``)
        hidden_dim (int): LSTM and attention width. (default: ``128``)
        embed_dim (int, optional): input embedding width; ``None``: ``hidden_dim``. (default: ``None``)
        num_layers (int): LSTM layers of encoder and decoder. (default: ``1``)
        eos (bool): add the end-of-sequence position 0. (default: ``False``)
        clip (float, optional): logit clipping :math:`C\tanh(u)` in the pointer (Kool et al. 2019 use
            10). (default: ``None``)
        device, dtype: factory arguments for the parameters. (default: ``None``)

    Shapes:
        - **input:** ``x`` ``[B, n, input_dim]``; ``lengths`` ``[B]`` integer in ``[1, n]`` (instance ``b``
          uses ``x[b, :lengths[b]]``; the rest is padding and never pointed at); ``targets`` ``[B, T]``
          positions in ``[0, m)``, ``-1`` for padding after a sequence's end.
        - **output:** :meth:`forward`: log-probabilities ``[B, T, m]`` with ``m = n + eos``; rows sum to 1
          over allowed positions (a step with none allowed, e.g. after a permutation is complete, is all
          ``-inf``). :meth:`decode`: a :class:`Decoded`.

    Memory: the pointer scores of a forward pass form a ``[B, T, m, hidden_dim]`` tensor.
    """

    def __init__(
        self,
        input_dim: int = 2,
        hidden_dim: int = 128,
        *,
        embed_dim: int | None = None,
        num_layers: int = 1,
        eos: bool = False,
        clip: float | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        embed_dim = hidden_dim if embed_dim is None else embed_dim
        for arg, value in (
            ("input_dim", input_dim),
            ("hidden_dim", hidden_dim),
            ("embed_dim", embed_dim),
            ("num_layers", num_layers),
        ):
            if value < 1:
                raise ValueError(f"{name}: {arg} must be >= 1, got {value}")
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        self.embed_dim = embed_dim
        self.num_layers = num_layers
        self.eos = bool(eos)
        self.embedding = nn.Linear(input_dim, embed_dim, **factory)
        self.encoder = nn.LSTM(embed_dim, hidden_dim, num_layers, batch_first=True, **factory)
        self.decoder = nn.LSTM(embed_dim, hidden_dim, num_layers, batch_first=True, **factory)
        self.pointer = PointerAttention(hidden_dim, hidden_dim, hidden_dim, clip=clip, **factory)
        self.start = nn.Parameter(torch.empty(embed_dim, **factory))
        self.eos_key: nn.Parameter | None
        if self.eos:
            self.eos_key = nn.Parameter(torch.empty(hidden_dim, **factory))
        else:
            self.register_parameter("eos_key", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every parameter uniform in ``[-0.08, 0.08]`` (Vinyals et al. 2015)."""
        for p in self.parameters():
            nn.init.uniform_(p, -0.08, 0.08)

    @property
    def _name(self) -> str:
        return type(self).__name__

    def _check(self, x: torch.Tensor, lengths: torch.Tensor | None) -> None:
        if x.dim() != 3 or x.shape[-1] != self.input_dim or x.shape[1] < 1:
            raise ValueError(
                f"{self._name}: x must have shape [B, n, {self.input_dim}] with n >= 1, got {tuple(x.shape)}"
            )
        if lengths is None:
            return
        if lengths.shape != x.shape[:1] or lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
            raise ValueError(
                f"{self._name}: lengths must be an integer tensor of shape [{x.shape[0]}], got "
                f"{lengths.dtype} {tuple(lengths.shape)}"
            )
        if bool(((lengths < 1) | (lengths > x.shape[1])).any()):
            raise ValueError(f"{self._name}: lengths must be in [1, {x.shape[1]}], got {lengths.tolist()}")

    def _encode(self, x: torch.Tensor, lengths: torch.Tensor | None) -> _Encoding:
        batch, n, _ = x.shape
        emb = self.embedding(x)  # [B, n, E]
        if lengths is None:
            lengths = torch.full((batch,), n, dtype=torch.long, device=x.device)
            enc, state = self.encoder(emb)
        else:
            lengths = lengths.to(device=x.device, dtype=torch.long)
            packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, state = self.encoder(packed)
            enc, _ = pad_packed_sequence(out, batch_first=True, total_length=n)
        valid = torch.arange(n, device=x.device) < lengths[:, None]  # [B, n]
        choices = emb
        if self.eos_key is not None:
            enc = torch.cat([self.eos_key.expand(batch, 1, -1), enc], dim=1)
            valid = torch.cat([valid.new_ones(batch, 1), valid], dim=1)
            # Nothing follows EOS but padding: the decoder input after it is the start input.
            choices = torch.cat([self.start.expand(batch, 1, -1), emb], dim=1)
        return _Encoding(self.pointer.project_keys(enc), choices, state, valid, lengths)

    def forward(
        self,
        x: torch.Tensor,
        targets: torch.Tensor,
        lengths: torch.Tensor | None = None,
        *,
        mask: StepMask | None = None,
    ) -> torch.Tensor:
        r"""Teacher-forced log-probabilities :math:`\log p(y_t = j \mid y_{<t}, x)`, ``[B, T, m]``.

        The decoder is fed the target's previous position at every step. With ``mask`` the step masks
        are those decoding would apply given the target prefix (so a target the mask forbids gets
        :math:`-\infty`); without it every valid position is allowed at every step (Vinyals et al. train
        this way and constrain only the search).
        """
        self._check(x, lengths)
        m = x.shape[1] + int(self.eos)
        if (
            targets.dim() != 2
            or targets.shape[0] != x.shape[0]
            or targets.shape[1] < 1
            or targets.dtype != torch.long
        ):
            raise ValueError(
                f"{self._name}: targets must be a long tensor of shape [{x.shape[0]}, T] with T >= 1, got "
                f"{targets.dtype} {tuple(targets.shape)}"
            )
        if targets.numel() and int(targets.max()) >= m:
            raise ValueError(f"{self._name}: targets must be < {m} (positions), got {int(targets.max())}")
        enc = self._encode(x, lengths)
        batch, steps = targets.shape
        previous = targets[:, :-1].clamp(min=0)
        fed = enc.choices.gather(1, previous[..., None].expand(-1, -1, self.embed_dim))  # [B, T-1, E]
        inputs = torch.cat([self.start.expand(batch, 1, -1), fed], dim=1)  # [B, T, E]
        d, _ = self.decoder(inputs, enc.state)  # [B, T, H]
        allowed = enc.valid[:, None, :]
        if mask is not None:
            state = DecodingState.initial(enc.valid, enc.lengths, 0 if self.eos else None)
            per_step = []
            for t in range(steps):
                per_step.append(mask.allowed(state) & enc.valid)
                state = state.advance(targets[:, t])
            allowed = torch.stack(per_step, dim=1) if per_step else allowed
        return self.pointer(d, allowed=allowed, projected_keys=enc.keys)

    def decode(
        self,
        x: torch.Tensor,
        lengths: torch.Tensor | None = None,
        *,
        mask: StepMask,
        strategy: DecodingStrategy = "greedy",
        width: int = 1,
        max_steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Decoded:
        r"""Decode ``W = width`` sequences per instance under the step mask ``mask``.

        - ``"greedy"``: the most likely position at every step (``width`` must be 1).
        - ``"sample"``: ``width`` independent samples :math:`y_t \sim p(\cdot \mid y_{<t}, x)` (drawn with
          ``generator``), e.g. for REINFORCE or best-of-``W`` inference.
        - ``"beam"``: beam search with ``width`` beams on the summed log-likelihood (no length
          normalisation). A finished beam stays in the beam at its score. Width 1 is greedy decoding.
          Beam search is not guaranteed to beat greedy decoding, only to keep the ``width`` best
          prefixes at every step; with ``width`` at least the number of possible sequences it is exact.

        Gradients flow into ``log_likelihood`` unless called under ``torch.no_grad()``.

        Args:
            x: ``[B, n, input_dim]``.
            lengths: ``[B]`` or ``None`` (all ``n``).
            mask: the :class:`StepMask` of the task.
            strategy: ``"greedy"``, ``"sample"`` or ``"beam"``. (default: ``"greedy"``)
            width: beams or samples per instance. (default: ``1``)
            max_steps: stop after this many steps; ``None``: ``mask.max_steps(n, eos)``.
            generator: random generator for ``"sample"``. (default: ``None``, the global one)

        Returns:
            :class:`Decoded` with ``sequences`` ``[B, W, T]``, ``log_likelihood`` ``[B, W]`` (best first)
            and ``lengths`` ``[B, W]``.
        """
        self._check(x, lengths)
        if strategy not in get_args(DecodingStrategy):
            raise ValueError(
                f"{self._name}: strategy must be one of {get_args(DecodingStrategy)}, got {strategy!r}"
            )
        if width < 1 or (strategy == "greedy" and width != 1):
            raise ValueError(f"{self._name}: width must be >= 1 (1 for greedy), got {width} for {strategy!r}")
        if not isinstance(mask, StepMask):
            raise TypeError(f"{self._name}: mask must be a StepMask, got {type(mask).__name__}")
        n = x.shape[1]
        max_steps = mask.max_steps(n, self.eos) if max_steps is None else max_steps
        if max_steps < 1:
            raise ValueError(f"{self._name}: max_steps must be >= 1, got {max_steps}")
        enc = self._encode(x, lengths)
        batch, m = enc.valid.shape
        rows = batch * width
        instance = torch.arange(rows, device=x.device) // width  # the instance of every row
        h, c = (s.repeat_interleave(width, dim=1) for s in enc.state)  # [L, R, H]
        state = DecodingState.initial(enc.valid[instance], enc.lengths[instance], 0 if self.eos else None)
        score = torch.zeros(batch, width, dtype=enc.keys.dtype, device=x.device)
        if strategy == "beam":
            score[:, 1:] = -math.inf  # one live beam at first, so beams never duplicate each other
        finished = torch.zeros(rows, dtype=torch.bool, device=x.device)
        # A finished row continues at no cost: it "chooses" position 0 with log-probability 0.
        pad = torch.full((m,), -math.inf, dtype=score.dtype, device=x.device)
        pad[0] = 0.0
        inputs = self.start.expand(rows, -1)
        for _ in range(max_steps):
            allowed = mask.allowed(state) & state.valid  # [R, m]
            stuck = ~finished & ~allowed.any(dim=1)  # no valid continuation: the row fails
            score = score.masked_fill(stuck.view(batch, width), -math.inf)
            finished = finished | stuck
            if bool(finished.all()):
                break
            out, (h, c) = self.decoder(inputs[:, None, :], (h, c))  # [R, 1, H]
            logp = self.pointer(
                out.view(batch, width, -1), allowed=allowed.view(batch, width, m), projected_keys=enc.keys
            )  # [B, W, m]
            logp = torch.where(finished.view(batch, width, 1), pad, logp)
            if strategy == "beam":
                total = (score[..., None] + logp).flatten(1)  # [B, W * m]
                score, best = total.topk(width, dim=1)
                parent = best // m
                token = (best % m).flatten()
                keep = (parent + torch.arange(batch, device=x.device)[:, None] * width).flatten()
                h, c, state, finished = h[:, keep], c[:, keep], state.reorder(keep), finished[keep]
                finished = finished | torch.isneginf(score).flatten()
            else:
                if strategy == "greedy":
                    token = logp.argmax(dim=-1).flatten()
                else:
                    probs = logp.exp().view(rows, m)
                    token = torch.multinomial(probs, 1, generator=generator).flatten()
                score = score + logp.view(rows, m).gather(1, token[:, None]).view(batch, width)
            state = state.advance(torch.where(finished, -1, token))
            finished = finished | mask.finished(state)
            inputs = enc.choices[instance, token]
        sequences = state.history.view(batch, width, -1)
        if strategy != "greedy":
            score, order = score.sort(dim=1, descending=True)
            sequences = sequences.gather(1, order[..., None].expand_as(sequences))
        dead = torch.isneginf(score)
        sequences = torch.where(dead[..., None], -1, sequences)
        return Decoded(sequences, score, (sequences >= 0).sum(dim=-1))

    def extra_repr(self) -> str:
        return (
            f"input_dim={self.input_dim}, hidden_dim={self.hidden_dim}, embed_dim={self.embed_dim}, "
            f"num_layers={self.num_layers}, eos={self.eos}"
        )
