"""Writes a model folder shaped like BAAI/bge-m3 (XLM-RoBERTa: 24 layers, hidden 1024, intermediate 4096, a
250,002-row word table, 8,194 positions) with seeded random weights, for measuring memory and load time at that
size where the real weights cannot be fetched (bench/memory-shaped.mjs). The tokenizer and sentence-transformers
files come from the tiny XLM-R fixture (its token ids are all inside the big table). About 2.3 GB, in target/.

Usage: python bench/make_shaped_model.py [out=target/bge-m3-shaped]; needs numpy and safetensors.
"""
import json
import pathlib
import shutil
import sys

import numpy as np
from safetensors.numpy import save_file

root = pathlib.Path(__file__).resolve().parent.parent
out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else root / "target/bge-m3-shaped"
tiny = root / "fixtures/reference/tiny-xlmr-cls/model"
H, I, L, V, P = 1024, 4096, 24, 250002, 8194
if (out / "model.safetensors").exists():
    print(f"{out} exists")
    sys.exit(0)
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(7)


def normal(*shape):
    return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)


tensors = {
    "embeddings.word_embeddings.weight": normal(V, H),
    "embeddings.position_embeddings.weight": normal(P, H),
    "embeddings.token_type_embeddings.weight": normal(1, H),
    "embeddings.LayerNorm.weight": np.ones(H, np.float32),
    "embeddings.LayerNorm.bias": np.zeros(H, np.float32),
}
for n in range(L):
    p = f"encoder.layer.{n}."
    for part in ["query", "key", "value"]:
        tensors[p + f"attention.self.{part}.weight"] = normal(H, H)
        tensors[p + f"attention.self.{part}.bias"] = np.zeros(H, np.float32)
    tensors[p + "attention.output.dense.weight"] = normal(H, H)
    tensors[p + "attention.output.dense.bias"] = np.zeros(H, np.float32)
    tensors[p + "attention.output.LayerNorm.weight"] = np.ones(H, np.float32)
    tensors[p + "attention.output.LayerNorm.bias"] = np.zeros(H, np.float32)
    tensors[p + "intermediate.dense.weight"] = normal(I, H)
    tensors[p + "intermediate.dense.bias"] = np.zeros(I, np.float32)
    tensors[p + "output.dense.weight"] = normal(H, I)
    tensors[p + "output.dense.bias"] = np.zeros(H, np.float32)
    tensors[p + "output.LayerNorm.weight"] = np.ones(H, np.float32)
    tensors[p + "output.LayerNorm.bias"] = np.zeros(H, np.float32)
save_file(tensors, str(out / "model.safetensors"))
config = json.loads((tiny / "config.json").read_text())
config.update(hidden_size=H, intermediate_size=I, num_hidden_layers=L, num_attention_heads=16, vocab_size=V, max_position_embeddings=P)
(out / "config.json").write_text(json.dumps(config, indent=2))
for f in ["tokenizer.json", "tokenizer_config.json", "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json"]:
    shutil.copy(tiny / f, out / f)
shutil.copytree(tiny / "1_Pooling", out / "1_Pooling", dirs_exist_ok=True)
print(f"wrote {out}")
