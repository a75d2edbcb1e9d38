"""Solvers built on geoattn's models and tasks: batched local search for the TSP (2-opt, Or-opt) in torch.

:func:`two_opt` and :func:`or_opt` improve a batch of tours at once, vectorised over instances and moves.
Decoding strategies (greedy, sampling, beam search) are options of :meth:`geoattn.nn.PointerNetwork.decode`.
"""

from .local_search import LocalSearchResult, or_opt, two_opt

__all__ = ["LocalSearchResult", "or_opt", "two_opt"]
