"""The part of a corpus that travels to the GPU machine (at most 64 MiB with the working tree):
every document but Python up to --python-mb (the GPU machine adds the Python of its own site-packages).

    python -m training.device_corpus training/work/corpus/docs.jsonl --python-mb 60 \
        --manifest-out training/work/device-corpus/manifest.json | xz > docs.jsonl.xz

The manifest written is the corpus's own with per_language counting what was kept.
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("docs")
    ap.add_argument("--python-mb", type=float, default=60)
    ap.add_argument("--manifest-out", help="the corpus's manifest.json (beside DOCS), per_language as kept")
    args = ap.parse_args()
    kept, files = {}, {}
    for line in open(args.docs, encoding="utf-8"):
        d = json.loads(line)
        n = len(d["text"].encode())
        if d["lang"] == "python" and kept.get("python", 0) + n > args.python_mb * 1e6:
            continue
        kept[d["lang"]] = kept.get(d["lang"], 0) + n
        files[d["lang"]] = files.get(d["lang"], 0) + 1
        sys.stdout.write(line)
    print({k: round(v / 1e6, 1) for k, v in kept.items()}, "MB kept", file=sys.stderr)
    if args.manifest_out:
        import os
        man = json.load(open(os.path.join(os.path.dirname(args.docs), "manifest.json")))
        man["per_language"] = {l: {"files": files.get(l, 0), "bytes": kept.get(l, 0)} for l in man["languages"]}
        man["subset"] = {"python_mb": args.python_mb}
        json.dump(man, open(args.manifest_out, "w"), indent=2)


if __name__ == "__main__":
    main()
