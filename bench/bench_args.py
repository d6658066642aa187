"""Command line shared by the Python benchmarks: [runs=3] [threads=2] [--out file] [--dtype fp32|bf16]
[--model folder] [--limit N] (another model than all-MiniLM-L6-v2; the corpus's first N texts only)."""
import sys

# --model and --limit, set by parse() (None when not given).
model = None
limit = None


def parse():
    args = sys.argv[1:]

    def flag(name, default=None):
        if name not in args:
            return default
        i = args.index(name)
        value = args[i + 1]
        del args[i : i + 2]
        return value

    global model, limit
    model = flag("--model")
    limit = int(flag("--limit", 0)) or None
    out_path = flag("--out")
    dtype = flag("--dtype", "fp32")
    runs = int(args[0]) if len(args) > 0 else 3
    threads = int(args[1]) if len(args) > 1 else 2
    return runs, threads, out_path, dtype
