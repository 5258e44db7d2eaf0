"""Give an existing model folder what training/export.py now writes with --quantize (--int8-compute):

- draft models (drafter.onnx, ar.onnx) with constant shape arithmetic (training/static_shapes.py)
  and int8 compute (export.quantize with int8_activations);
- with --verifier, the verifier re-exported from the folder's model.safetensors with the current
  attention (normalised through the value product: tree passes bit-identical to chain passes),
  int8 weights, int8 compute (export.int8_compute_verifier) and deer.json's min_tokens_per_pass.

    python -m training.retrofit_int8 models/default [--verifier] [--out DIR]

A weight-only int8 drafter is turned back into fp32 first (onnxruntime's constant folding of its
int8 -> float chains, the values the engine computed with before), then rewritten. The
verifier's weights come from model.safetensors, which the export wrote from the same checkpoint
as its ONNX file; re-quantizing them gives the same int8 rows.
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


def retrofit_verifier(folder, tmp, log=print):
    from training.hf import load_verifier
    deer_path = os.path.join(folder, "deer.json")
    deer = json.load(open(deer_path))
    v = deer["verifier"]
    hidden = v.get("hidden_states")
    fp32 = os.path.join(tmp, "verifier.onnx")
    export.export_verifier(load_verifier(folder), fp32, with_hidden=hidden is not None,
                           with_tree=bool(v.get("tree_attention")), taps=tuple(hidden.get("layers", ())) if hidden else (),
                           value_normalised=True)
    report = {"static_shapes": make_static(fp32, fp32)}
    final = os.path.join(folder, v["file"])
    report["quantize"] = export.quantize(fp32, final)
    report["int8_compute"] = export.int8_compute_verifier(final, final)
    v["min_tokens_per_pass"] = export.INT8_COMPUTE_MIN_TOKENS
    export._json(deer_path, deer)
    log(f"{v['file']}: {report}")
    return report


def retrofit(folder, out=None, verifier=False, log=print):
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
        if verifier:
            report["verifier"] = retrofit_verifier(folder, tmp, log)
    return report


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--out", help="write a copy here instead of rewriting the folder")
    ap.add_argument("--verifier", action="store_true", help="also re-export the verifier (needs model.safetensors)")
    args = ap.parse_args()
    retrofit(args.folder, args.out, args.verifier)
