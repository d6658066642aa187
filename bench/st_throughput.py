"""sentence-transformers on the same corpus and settings as bench/throughput.mjs, for a side-by-side ratio.

Usage: python bench/st_throughput.py [runs=3] [threads=2]
Needs sentence-transformers (and torch) installed; not part of the test suite.
"""
import json
import pathlib
import statistics
import sys
import time

import torch
from sentence_transformers import SentenceTransformer

root = pathlib.Path(__file__).resolve().parent.parent
runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
torch.set_num_threads(threads)
corpus = json.loads((root / "target/bench-corpus.json").read_text())
model = SentenceTransformer(str(root / "fixtures/models/all-MiniLM-L6-v2"), device="cpu")
tokens = int(model.tokenize(corpus)["attention_mask"].sum())
model.encode(corpus[:32], batch_size=32)
seconds = []
for _ in range(runs):
    t0 = time.perf_counter()
    with torch.inference_mode():
        model.encode(corpus, batch_size=32)
    seconds.append(time.perf_counter() - t0)
med = statistics.median(seconds)
print(json.dumps({
    "engine": f"sentence-transformers (torch {torch.__version__}, fp32, {threads} threads)",
    "texts": len(corpus), "tokens": tokens, "seconds": [round(s, 3) for s in seconds],
    "medianSeconds": round(med, 3), "tokensPerSecond": round(tokens / med),
}))
