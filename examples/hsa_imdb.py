"""IMDB sentiment from scratch, hierarchy document -> sentences -> words: HSA vs flat softmax.

Reviews are split into sentences at ``<br />`` tags (the dataset keeps the HTML line breaks) and at
sentence-final punctuation, tokenised into lower-cased words and punctuation, and truncated to 400 tokens.
The paper (Amizadeh et al., arXiv:2509.15448) reports 0.674 (flat softmax) -> 0.747 (HSA) accuracy with
pretrained Word2Vec inputs; no pretrained word vectors are available offline here, so **the word embeddings
are learnt from scratch** (vocabulary of the 30,000 most frequent tokens of the training reviews). 2,500
training reviews are held out for validation (seeded); the official 25,000 test reviews are scored at the end.

The two models are the same ``HsaClassifier`` (d=64, 4 heads, 2 layers, equal parameters, steps and
optimiser); ``model.attention`` picks the hierarchy: ``hsa`` (document -> sentences -> words) or ``flat`` (one
root over all tokens, where HSA is exactly softmax attention). Each run is
``geoattn-train experiment=hsa/imdb`` (4 epochs). Results go to ``--out`` as they finish (``results.jsonl``,
``results.md``); finished runs are skipped, interrupted ones resume. Measured on one H200 with the six runs
sharing it (``benchmarks/hsa_examples.py --jobs 6 --threads 2``): 261 s per hsa run, 132 s per flat run, test
accuracy 0.829 ± 0.027 (hsa) vs 0.843 ± 0.003 (flat) — the paper's gain did not reproduce here (RESULTS.md)::

    python examples/hsa_imdb.py --seeds 0 1 2 --device cuda --out runs/hsa_imdb
    geoattn-train experiment=hsa/imdb model.attention=hsa hydra.run.dir=runs/hsa_imdb_hsa       # one run
    python examples/hsa_imdb.py --smoke --out /tmp/hsa_imdb   # tiny model and data on CPU (run by the tests)
"""

from __future__ import annotations

from pathlib import Path

from geoattn.train.tasks.hsa_classification import HSA_VS_FLAT, SMOKE_RUN, comparison_main

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VARIANTS = HSA_VS_FLAT
SMOKE = ["data.limit=120", "data.val_size=30", "data.max_tokens=64", *SMOKE_RUN]
TITLE = "IMDB, document -> sentences -> words (embeddings from scratch): HSA vs flat softmax"


def main(argv: list[str] | None = None) -> None:
    comparison_main(argv, "hsa/imdb", VARIANTS, SMOKE, data_root=DATA, title=TITLE, description=__doc__)


if __name__ == "__main__":
    main()
