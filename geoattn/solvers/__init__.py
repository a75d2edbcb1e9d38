"""Solvers built on geoattn's models and tasks: batched local search for the TSP (2-opt, Or-opt) in torch.

:func:`two_opt` and :func:`or_opt` improve a batch of tours at once, vectorised over instances and moves.
Decoding strategies (greedy, sampling, beam search) are options of :meth:`geoattn.nn.PointerNetwork.decode`.
:func:`decode_tours` decodes :class:`geoattn.nn.TSPAttentionModel` tours (greedy, POMO multi-start, sampling,
x8 symmetry augmentation); :func:`load_pretrained` loads the policies shipped in ``geoattn/solvers/weights``.
"""

from .local_search import LocalSearchResult, or_opt, two_opt
from .neural import DecodeResult, DecodeStrategy, decode_tours, symmetry_augment
from .pretrained import PretrainedWeightsError, available_pretrained, export_pretrained, load_pretrained

__all__ = [
    "DecodeResult",
    "DecodeStrategy",
    "LocalSearchResult",
    "PretrainedWeightsError",
    "available_pretrained",
    "decode_tours",
    "export_pretrained",
    "load_pretrained",
    "or_opt",
    "symmetry_augment",
    "two_opt",
]
