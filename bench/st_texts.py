"""sentence-transformers on the texts of a JSON file, one call per text, for the shaped-model parity checks
(bench/decoder-shaped.mjs): writes each text's vector and token count, the seconds each took and the process's
peak resident memory.

Usage: python bench/st_texts.py <model folder> <texts.json> <out.json> [threads=2] [prompt name]
"""
import json
import resource
import sys
import time

import torch
from sentence_transformers import SentenceTransformer

model_dir, texts_path, out_path = sys.argv[1:4]
threads = int(sys.argv[4]) if len(sys.argv) > 4 else 2
prompt = sys.argv[5] if len(sys.argv) > 5 else None
torch.set_num_threads(threads)
model = SentenceTransformer(model_dir, device="cpu")
texts = json.loads(open(texts_path).read())
vectors, counts, seconds = [], [], []
for text in texts:
    t0 = time.perf_counter()
    with torch.inference_mode():
        vectors.append(model.encode([text], prompt_name=prompt, convert_to_numpy=True)[0].tolist())
    seconds.append(time.perf_counter() - t0)
    counts.append(int(model.tokenize([(model.prompts.get(prompt, "") if prompt else "") + text])["attention_mask"].sum()))
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
json.dump({"vectors": vectors, "token_counts": counts, "seconds": seconds, "peak_mb": peak_mb, "torch": torch.__version__}, open(out_path, "w"))
