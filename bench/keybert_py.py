"""Python KeyBERT on the key-phrase reference texts, the daemon's arguments: prints one JSON line
{"seconds": s, "texts": n}. Usage: python bench/keybert_py.py MODEL_DIR TEXTS_JSON [threads=2]"""
import json
import sys
import time

import torch
from keybert import KeyBERT
from sentence_transformers import SentenceTransformer

model_dir, texts_path = sys.argv[1], sys.argv[2]
threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
torch.set_num_threads(threads)
texts = [t["text"] if isinstance(t, dict) else t for t in json.load(open(texts_path))]
kw = KeyBERT(model=SentenceTransformer(model_dir, device="cpu"))
kw.extract_keywords(texts[0], keyphrase_ngram_range=(1, 3), use_mmr=True, diversity=0.5, top_n=10, stop_words="english")
start = time.perf_counter()
# The daemon's batch handler loops over its texts, one extract_keywords call each.
for text in texts:
    kw.extract_keywords(text, keyphrase_ngram_range=(1, 3), use_mmr=True, diversity=0.5, top_n=10, stop_words="english")
print(json.dumps({"seconds": time.perf_counter() - start, "texts": len(texts)}))
