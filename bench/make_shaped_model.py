"""Writes a model folder shaped like BAAI/bge-m3 (XLM-RoBERTa: 24 layers, hidden 1024, intermediate 4096, a
250,002-row word table, 8,194 positions) with seeded random weights, for measuring memory and load time at that
size where the real weights cannot be fetched (bench/memory-shaped.mjs). The tokenizer and sentence-transformers
files come from the tiny XLM-R fixture (its token ids are all inside the big table). About 2.3 GB, in target/.

With `modernbert` first, writes a ModernBERT-base-shaped folder instead (22 layers, hidden 768, intermediate
1152, a 50,368-row table, local attention 128 with a global layer every 3), for bench/throughput.mjs --model.

With `qwen3` first, a Qwen3-Embedding-0.6B-shaped folder (28 layers, hidden 1024, 16 query heads sharing 8
key/value heads of 128, intermediate 3072, a 151,669-row table, rope_theta 1e6, `max_seq_length` 32,768) with
tiny-qwen3-last's tokenizer and sentence-transformers files (last-token pooling, the query prompt), for
bench/decoder-shaped.mjs. About 3 GB.

With `gemma3` first, an EmbeddingGemma-300M-shaped folder (Gemma 3 text with bidirectional attention: 24 layers,
hidden 768, 3 query heads sharing 1 key/value head of 256, intermediate 1152, a 262,144-row table, a sliding
window of 512 on five layers in six, rope bases 1e6 and 1e4, `max_seq_length` 2,048, then mean pooling and
Dense 768 -> 3072 -> 768) with tiny-gemma3-mean's tokenizer and task prompts, for bench/decoder-shaped.mjs.
About 1.2 GB.

Usage: python bench/make_shaped_model.py [modernbert|qwen3|gemma3] [out=target/<kind>-shaped];
needs numpy and safetensors.
"""
import json
import pathlib
import shutil
import sys

import numpy as np
from safetensors.numpy import save_file

root = pathlib.Path(__file__).resolve().parent.parent
args = sys.argv[1:]
kind = args[0] if args and args[0] in ("modernbert", "qwen3", "gemma3") else "bge-m3"
modernbert = kind == "modernbert"
args = args[1:] if kind != "bge-m3" else args
out = pathlib.Path(args[0]) if args else root / f"target/{kind}-shaped"
if (out / "model.safetensors").exists():
    print(f"{out} exists")
    sys.exit(0)
out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(7)


def normal(*shape):
    return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)


def finish(tiny, tensors, **sizes):
    save_file(tensors, str(out / "model.safetensors"))
    config = json.loads((tiny / "config.json").read_text())
    config.update(sizes)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json"]:
        if (tiny / f).exists():
            shutil.copy(tiny / f, out / f)
    for module in ["1_Pooling", "2_Normalize"]:
        if (tiny / module).exists():
            shutil.copytree(tiny / module, out / module, dirs_exist_ok=True)
    print(f"wrote {out}")


if modernbert:
    H, I, L, V = 768, 1152, 22, 50368
    tensors = {"embeddings.tok_embeddings.weight": normal(V, H), "embeddings.norm.weight": np.ones(H, np.float32)}
    for n in range(L):
        p = f"layers.{n}."
        if n > 0:
            tensors[p + "attn_norm.weight"] = np.ones(H, np.float32)
        tensors[p + "attn.Wqkv.weight"] = normal(3 * H, H)
        tensors[p + "attn.Wo.weight"] = normal(H, H)
        tensors[p + "mlp_norm.weight"] = np.ones(H, np.float32)
        tensors[p + "mlp.Wi.weight"] = normal(2 * I, H)
        tensors[p + "mlp.Wo.weight"] = normal(H, I)
    tensors["final_norm.weight"] = np.ones(H, np.float32)
    layer_types = ["full_attention" if n % 3 == 0 else "sliding_attention" for n in range(L)]
    finish(root / "fixtures/reference/tiny-modernbert-mean/model", tensors, hidden_size=H, intermediate_size=I,
           num_hidden_layers=L, num_attention_heads=12, vocab_size=V, max_position_embeddings=8192,
           local_attention=128, layer_types=layer_types)
    # Truncated at 256 as the benchmark corpus is for all-MiniLM-L6-v2: past the 128-token window either way.
    # The module names of sentence-transformers 3 (which bench/st_throughput.py runs) rather than the fixture's 6.
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 256, "do_lower_case": False}))
    modules = [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize")]
    (out / "modules.json").write_text(json.dumps(
        [{"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"} for i, (path, kind) in enumerate(modules)]))
    tok = json.loads((out / "tokenizer_config.json").read_text())
    tok.update(tokenizer_class="PreTrainedTokenizerFast", model_max_length=8192, model_input_names=["input_ids", "attention_mask"])
    (out / "tokenizer_config.json").write_text(json.dumps(tok))
    (out / "1_Pooling/config.json").write_text(json.dumps({"word_embedding_dimension": H, "pooling_mode_mean_tokens": True}))
    sys.exit(0)

if kind == "qwen3":
    H, I, L, V, HEADS, KV, D, P = 1024, 3072, 28, 151669, 16, 8, 128, 32768
    tensors = {"embed_tokens.weight": normal(V, H), "norm.weight": np.ones(H, np.float32)}
    for n in range(L):
        p = f"layers.{n}."
        tensors[p + "input_layernorm.weight"] = np.ones(H, np.float32)
        tensors[p + "post_attention_layernorm.weight"] = np.ones(H, np.float32)
        tensors[p + "self_attn.q_proj.weight"] = normal(HEADS * D, H)
        tensors[p + "self_attn.k_proj.weight"] = normal(KV * D, H)
        tensors[p + "self_attn.v_proj.weight"] = normal(KV * D, H)
        tensors[p + "self_attn.o_proj.weight"] = normal(H, HEADS * D)
        tensors[p + "self_attn.q_norm.weight"] = np.ones(D, np.float32)
        tensors[p + "self_attn.k_norm.weight"] = np.ones(D, np.float32)
        tensors[p + "mlp.gate_proj.weight"] = normal(I, H)
        tensors[p + "mlp.up_proj.weight"] = normal(I, H)
        tensors[p + "mlp.down_proj.weight"] = normal(H, I)
    finish(root / "fixtures/reference/tiny-qwen3-last/model", tensors, hidden_size=H, intermediate_size=I,
           num_hidden_layers=L, num_attention_heads=HEADS, num_key_value_heads=KV, head_dim=D, vocab_size=V,
           max_position_embeddings=P, rope_theta=1000000.0, layer_types=["full_attention"] * L, max_window_layers=L)
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": P, "do_lower_case": False}))
    tok = json.loads((out / "tokenizer_config.json").read_text())
    tok.update(model_max_length=P)
    (out / "tokenizer_config.json").write_text(json.dumps(tok))
    # Every flag written, as sentence-transformers saves them (an absent pooling_mode_mean_tokens means True).
    flags = {f"pooling_mode_{m}": m == "lasttoken" for m in ["cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens", "lasttoken"]}
    (out / "1_Pooling/config.json").write_text(json.dumps({"word_embedding_dimension": H, **flags, "include_prompt": True}))
    sys.exit(0)

if kind == "gemma3":
    H, I, L, V, HEADS, KV, D, P, W = 768, 1152, 24, 262144, 3, 1, 256, 2048, 512
    # Norm weights near 0: Gemma scales by (1 + weight).
    tensors = {"embed_tokens.weight": normal(V, H), "norm.weight": normal(H)}
    for n in range(L):
        p = f"layers.{n}."
        for norm in ["input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"]:
            tensors[p + norm + ".weight"] = normal(H)
        tensors[p + "self_attn.q_proj.weight"] = normal(HEADS * D, H)
        tensors[p + "self_attn.k_proj.weight"] = normal(KV * D, H)
        tensors[p + "self_attn.v_proj.weight"] = normal(KV * D, H)
        tensors[p + "self_attn.o_proj.weight"] = normal(H, HEADS * D)
        tensors[p + "self_attn.q_norm.weight"] = normal(D)
        tensors[p + "self_attn.k_norm.weight"] = normal(D)
        tensors[p + "mlp.gate_proj.weight"] = normal(I, H)
        tensors[p + "mlp.up_proj.weight"] = normal(I, H)
        tensors[p + "mlp.down_proj.weight"] = normal(H, I)
    layer_types = ["sliding_attention" if (n + 1) % 6 else "full_attention" for n in range(L)]
    tiny = root / "fixtures/reference/tiny-gemma3-mean/model"
    finish(tiny, tensors, hidden_size=H, intermediate_size=I, num_hidden_layers=L, num_attention_heads=HEADS,
           num_key_value_heads=KV, head_dim=D, vocab_size=V, max_position_embeddings=P, sliding_window=W,
           query_pre_attn_scalar=256, layer_types=layer_types)
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": P, "do_lower_case": False}))
    tok = json.loads((out / "tokenizer_config.json").read_text())
    tok.update(model_max_length=P)
    (out / "tokenizer_config.json").write_text(json.dumps(tok))
    (out / "1_Pooling/config.json").write_text(json.dumps({"word_embedding_dimension": H, "pooling_mode_mean_tokens": True, "include_prompt": True}))
    for name, (inp, outp) in {"2_Dense": (H, 4 * H), "3_Dense": (4 * H, H)}.items():
        (out / name).mkdir(exist_ok=True)
        save_file({"linear.weight": normal(outp, inp)}, str(out / name / "model.safetensors"))
        (out / name / "config.json").write_text(json.dumps({"in_features": inp, "out_features": outp, "bias": False, "activation_function": "torch.nn.modules.linear.Identity"}))
    shutil.copytree(tiny / "4_Normalize", out / "4_Normalize", dirs_exist_ok=True)
    sys.exit(0)

tiny = root / "fixtures/reference/tiny-xlmr-cls/model"
H, I, L, V, P = 1024, 4096, 24, 250002, 8194
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
finish(tiny, tensors, hidden_size=H, intermediate_size=I, num_hidden_layers=L, num_attention_heads=16, vocab_size=V,
       max_position_embeddings=P)
