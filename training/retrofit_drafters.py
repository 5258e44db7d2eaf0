"""Give the draft models of an existing model folder what training/export.py now writes: constant
shape arithmetic (training/static_shapes.py) and int8 activations (export.quantize with
int8_activations). For folders exported before that, whose drafters compute in fp32 on int8
weights. The verifier is not touched, so the folder's output is unchanged; only drafting speeds up.

    python -m training.retrofit_drafters models/default [--out DIR]

Each weight-only int8 drafter is turned back into fp32 first (onnxruntime's constant folding of
its int8 -> float chains, the same values the engine computed with before), then rewritten.
"""
import argparse
import json
import os
import shutil
import tempfile

from training import export
from training.static_shapes import make_static


def dequantize(path_in, path_out):
    """The graph with its weight-only int8 chains folded into fp32 initializers (standard ops only)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = path_out
    ort.InferenceSession(path_in, so, providers=["CPUExecutionProvider"])


def mask_id(folder):
    deer = json.load(open(os.path.join(folder, "deer.json")))
    mask = deer["special_tokens"]["mask"]
    tok = json.load(open(os.path.join(folder, "tokenizer.json")))
    return next(t["id"] for t in tok["added_tokens"] if t["content"] == mask)


def retrofit(folder, out=None, log=print):
    if out and os.path.abspath(out) != os.path.abspath(folder):
        shutil.copytree(folder, out, dirs_exist_ok=True)
        folder = out
    deer = json.load(open(os.path.join(folder, "deer.json")))
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in deer.get("drafters", {}).items():
            path = os.path.join(folder, spec["file"])
            if not export.is_weight_only_int8(path):
                log(f"{spec['file']}: not weight-only int8, left as it is")
                continue
            fp32 = os.path.join(tmp, f"{name}.onnx")
            dequantize(path, fp32)
            static = make_static(fp32, fp32, mask_id(folder) if name == "deer" else None)
            report[name] = {"static_shapes": static, "quantize": export.quantize(fp32, path, int8_activations=True)}
            log(f"{spec['file']}: {report[name]}")
    return report


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--out", help="write a copy here instead of rewriting the folder")
    args = ap.parse_args()
    retrofit(args.folder, args.out)
