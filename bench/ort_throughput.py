"""ONNX Runtime (fp32, or dynamic int8) on the same corpus and settings as bench/throughput.mjs, for a
side-by-side ratio.

Exports all-MiniLM-L6-v2 to ONNX once (target/minilm.onnx, with torch.onnx), then runs it with
onnxruntime, length-sorted batches of 32, truncation at 256, mean pooling and normalisation in numpy.
`--dtype int8` runs the model as fastembed's and transformers.js' quantized models are made: weights int8 per
output channel, activations quantized per tensor at run time (`quantize_dynamic`, once, target/minilm-int8.onnx).
Usage: python bench/ort_throughput.py [runs=3] [threads=2] [--out file] [--dtype fp32|int8]
Needs torch, transformers, onnx and onnxruntime installed; not part of the test suite.
"""
import json
import pathlib
import statistics
import sys
import time

import bench_args

import numpy as np
import onnxruntime as ort
from transformers import AutoModel, AutoTokenizer

root = pathlib.Path(__file__).resolve().parent.parent
runs, threads, out_path, dtype = bench_args.parse()
model_dir = root / "fixtures/models/all-MiniLM-L6-v2"
onnx_path = root / "target/minilm.onnx"
tok = AutoTokenizer.from_pretrained(str(model_dir))
if not onnx_path.exists():
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = AutoModel.from_pretrained(str(model_dir)).eval()

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    model = Encoder().eval()
    sample = tok(["hello world"], return_tensors="pt")
    torch.onnx.export(
        model,
        (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
        str(onnx_path),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["last_hidden_state"],
        dynamic_axes={n: {0: "batch", 1: "seq"} for n in ["input_ids", "attention_mask", "token_type_ids", "last_hidden_state"]},
        opset_version=17,
        dynamo=False,
    )
if dtype == "int8":
    int8_path = root / "target/minilm-int8.onnx"
    if not int8_path.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(onnx_path), str(int8_path), weight_type=QuantType.QInt8, per_channel=True)
    onnx_path = int8_path
opts = ort.SessionOptions()
opts.intra_op_num_threads = threads
opts.inter_op_num_threads = 1
sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
corpus = json.loads((root / "target/bench-corpus.json").read_text())


def embed(texts):
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out = [None] * len(texts)
    for s in range(0, len(order), 32):
        idx = order[s : s + 32]
        enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=256, return_tensors="np")
        hidden = sess.run(None, {k: enc[k].astype(np.int64) for k in ["input_ids", "attention_mask", "token_type_ids"]})[0]
        mask = enc["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        for j, i in enumerate(idx):
            out[i] = pooled[j]
    return out


tokens = int(sum(len(ids) for ids in tok(corpus, truncation=True, max_length=256)["input_ids"]))
embed(corpus[:32])
seconds = []
for _ in range(runs):
    t0 = time.perf_counter()
    vectors = embed(corpus)
    seconds.append(time.perf_counter() - t0)
if out_path:
    np.asarray(vectors, dtype=np.float32).tofile(out_path)
med = statistics.median(seconds)
print(json.dumps({
    "engine": f"onnxruntime {ort.__version__} ({'dynamic int8' if dtype == 'int8' else 'fp32'}, {threads} threads)",
    "texts": len(corpus), "tokens": tokens, "seconds": [round(s, 3) for s in seconds],
    "medianSeconds": round(med, 3), "tokensPerSecond": round(tokens / med),
}))
