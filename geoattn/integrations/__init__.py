"""Adapters that put geoattn's attention where users already work, outside geoattn's own modules.

* :mod:`geoattn.integrations.transformers` — hierarchical self-attention (HSA) as an attention
  implementation of Hugging Face ``transformers``: chosen layers of a loaded pretrained model switch to HSA
  over a token tree, with no new parameters (needs the ``hf`` extra: ``pip install 'geoattn[hf]'``).

Nothing is imported here, so ``import geoattn.integrations`` never needs an optional dependency.
"""
