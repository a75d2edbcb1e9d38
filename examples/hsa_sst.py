"""SST-2 sentiment from scratch with each sentence's own constituency tree as the hierarchy: HSA vs flat softmax.

The Stanford Sentiment Treebank ships a binary parse tree for every sentence; here that tree *is* the
hierarchy of hierarchical self-attention (every constituent a family of its two children; the pre-terminals
are merged into their tokens). Labels are sentence-level **SST-2** (root labels 0-1 negative, 3-4 positive,
neutral dropped: 6,920 / 872 / 1,821 sentences). Word embeddings are learnt from scratch (vocabulary from the
training split only). The two models are the same ``HsaClassifier`` (d=64, 4 heads, 2 layers, equal
parameters, steps and optimiser); ``model.attention`` picks the hierarchy handed to the layers:

- ``hsa``: the sentence's parse tree;
- ``flat``: one root over all tokens, where HSA is exactly softmax attention.

Each run is ``geoattn-train experiment=hsa/sst`` (5 epochs); afterwards the final weights are scored on the
dev (validation) and test sentences. Results go to ``--out`` as they finish (``results.jsonl``, one line per
run, and ``results.md``, mean ± std over seeds); finished runs are skipped and interrupted ones resume from
their checkpoint, so the command can simply be run again. Expected time per run on one H200: about 45 s
(hsa) and 20 s (flat), estimated (see ``benchmarks/hsa_examples.py``)::

    python examples/hsa_sst.py --seeds 0 1 2 --device cuda --out runs/hsa_sst
    geoattn-train experiment=hsa/sst model.attention=flat seed=1 hydra.run.dir=runs/hsa_sst_flat   # one run
    python examples/hsa_sst.py --smoke --out /tmp/hsa_sst     # tiny model and data on CPU (run by the tests)
"""

from __future__ import annotations

from pathlib import Path

from geoattn.train.tasks.hsa_classification import HSA_VS_FLAT, SMOKE_RUN, comparison_main

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VARIANTS = HSA_VS_FLAT
SMOKE = ["data.limit=160", *SMOKE_RUN]
TITLE = "SST-2, constituency trees: HSA vs flat softmax"


def main(argv: list[str] | None = None) -> None:
    comparison_main(argv, "hsa/sst", VARIANTS, SMOKE, data_root=DATA, title=TITLE, description=__doc__)


if __name__ == "__main__":
    main()
