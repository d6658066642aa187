"""sentence-transformers on the same corpus and settings as bench/throughput.mjs, for a side-by-side ratio.

Usage: python bench/st_throughput.py [runs=3] [threads=2] [--dtype bf16] [--out file] [--model folder] [--limit N]
(--dtype bf16 runs the model in torch.bfloat16; --out writes the last run's vectors as raw float32.)
Needs sentence-transformers (and torch) installed; not part of the test suite.
"""
import json
import pathlib
import statistics
import sys
import time

import bench_args

import torch
from sentence_transformers import SentenceTransformer

root = pathlib.Path(__file__).resolve().parent.parent
runs, threads, out_path, dtype = bench_args.parse()
torch.set_num_threads(threads)
corpus = json.loads((root / "target/bench-corpus.json").read_text())[: bench_args.limit]
model = SentenceTransformer(bench_args.model or str(root / "fixtures/models/all-MiniLM-L6-v2"), device="cpu")
if dtype == "bf16":
    model = model.to(torch.bfloat16)
tokens = int(model.tokenize(corpus)["attention_mask"].sum())
model.encode(corpus[:32], batch_size=32)
seconds = []
for _ in range(runs):
    t0 = time.perf_counter()
    with torch.inference_mode():
        vectors = model.encode(corpus, batch_size=32, convert_to_tensor=True)
    seconds.append(time.perf_counter() - t0)
if out_path:
    vectors.float().cpu().numpy().astype("float32").tofile(out_path)
med = statistics.median(seconds)
print(json.dumps({
    "engine": f"sentence-transformers (torch {torch.__version__}, {dtype}, {threads} threads)",
    "texts": len(corpus), "tokens": tokens, "seconds": [round(s, 3) for s in seconds],
    "medianSeconds": round(med, 3), "tokensPerSecond": round(tokens / med),
}))
