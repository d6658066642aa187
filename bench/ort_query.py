"""ONNX Runtime's idle-query latency and session creation time, for bench/compare.mjs --query: the model
exported by bench/ort_throughput.py (target/minilm.onnx), the same short query `repeats` times, tokenizer to
pooled, normalised vector (the Rust tokenizers library via transformers' fast tokenizer, numpy pooling).
Usage: python bench/ort_query.py [repeats=50] [threads=2] [--query "text"]. Prints one JSON line.
"""
import json
import pathlib
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort
from transformers import AutoTokenizer

args = sys.argv[1:]
query = "how do I configure the embedding model for my folder"
if "--query" in args:
    i = args.index("--query")
    query = args[i + 1]
    del args[i : i + 2]
repeats = int(args[0]) if len(args) > 0 else 50
threads = int(args[1]) if len(args) > 1 else 2
root = pathlib.Path(__file__).resolve().parent.parent
tok = AutoTokenizer.from_pretrained(str(root / "fixtures/models/all-MiniLM-L6-v2"))
opts = ort.SessionOptions()
opts.intra_op_num_threads = threads
opts.inter_op_num_threads = 1
t0 = time.perf_counter()
sess = ort.InferenceSession(str(root / "target/minilm.onnx"), opts, providers=["CPUExecutionProvider"])
load_ms = (time.perf_counter() - t0) * 1000


def embed(text):
    enc = tok([text], truncation=True, max_length=256, return_tensors="np")
    feeds = {k: enc[k].astype(np.int64) for k in ["input_ids", "attention_mask", "token_type_ids"]}
    hidden = sess.run(None, feeds)[0]
    mask = enc["attention_mask"][..., None].astype(np.float32)
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


ms = []
for i in range(repeats + 3):
    t = time.perf_counter()
    vector = embed(query)
    if i >= 3:
        ms.append((time.perf_counter() - t) * 1000)
print(json.dumps({"engine": f"ONNX Runtime {ort.__version__} fp32", "threads": threads, "loadMs": load_ms, "medianMs": statistics.median(ms), "vector": vector[0].tolist()}))
