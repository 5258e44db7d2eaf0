"""The part of a corpus that travels to the GPU machine (at most 64 MiB with the working tree):
every document but Python up to --python-mb (the GPU machine adds the Python of its own site-packages).

    python -m training.device_corpus training/work/corpus/docs.jsonl --python-mb 60 | xz > docs.jsonl.xz
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("docs")
    ap.add_argument("--python-mb", type=float, default=60)
    args = ap.parse_args()
    kept = {}
    for line in open(args.docs, encoding="utf-8"):
        d = json.loads(line)
        n = len(d["text"].encode())
        if d["lang"] == "python" and kept.get("python", 0) + n > args.python_mb * 1e6:
            continue
        kept[d["lang"]] = kept.get(d["lang"], 0) + n
        sys.stdout.write(line)
    print({k: round(v / 1e6, 1) for k, v in kept.items()}, "MB kept", file=sys.stderr)


if __name__ == "__main__":
    main()
