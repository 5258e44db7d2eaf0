"""
Give an existing model folder's verifier the tree_mask input (draft trees, docs/model-folder.md)
without its training checkpoint: the weights are read back from onnx/model.onnx (fp32, or int8
dynamic-quantized by training/export.py, dequantized), the verifier is re-exported with
tree attention, checked against the old graph and against PyTorch, and deer.json declares it.

    python -m training.retrofit_tree test/fixtures/tiny-model            # in place
    python -m training.retrofit_tree models/default --out /tmp/m --quantize
"""
import argparse
import json
import os
import shutil
import tempfile

import numpy as np
import torch

from training.export import (_json, _session, check_verifier, export_verifier, ort_verifier_step,
                             quantize)
from training.hf import gpt_config
from training.onnx_weights import gpt_from_onnx


def chain_logits(path, cfg, ids):
    past = [np.zeros((1, cfg.n_kv_head, 0, cfg.head_dim), dtype=np.float32) for _ in range(2 * cfg.n_layer)]
    return ort_verifier_step(_session(path), cfg.n_layer, cfg.n_kv_head, cfg.head_dim,
                             np.array([ids], dtype=np.int64), past, 0)[0]


def retrofit(folder, out=None, quantize_int8=False, log=print):
    out = out or folder
    if out != folder:
        shutil.copytree(folder, out, dirs_exist_ok=True)
    deer_path = os.path.join(out, "deer.json")
    deer = json.load(open(deer_path))
    cfg = gpt_config(folder)
    old = os.path.join(folder, deer["verifier"]["file"])
    gpt = gpt_from_onnx(old, cfg)
    with_hidden = "hidden_states" in deer["verifier"]
    tmp = tempfile.mkdtemp(prefix="deer-retrofit-")
    fp32 = os.path.join(tmp, "model.onnx")
    export_verifier(gpt, fp32, with_hidden=with_hidden, with_tree=True)
    final = os.path.join(tmp, "final.onnx")
    if quantize_int8:
        quantize(fp32, final)
    else:
        shutil.copyfile(fp32, final)
    probe = list(range(7, min(cfg.vocab_size, 7 + 40)))
    report = {"old_vs_new_max_abs_logit_diff": float(np.abs(chain_logits(old, cfg, probe) - chain_logits(final, cfg, probe)).max()),
              "parity": check_verifier(gpt, final, probe)}
    log(json.dumps(report))
    shutil.copyfile(final, os.path.join(out, deer["verifier"]["file"]))
    shutil.rmtree(tmp)
    deer["verifier"]["tree_attention"] = True
    _json(deer_path, deer)
    return report


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--out", help="write a copy here (default: in place)")
    ap.add_argument("--quantize", action="store_true", help="int8 dynamic weight quantization of the new graph")
    args = ap.parse_args()
    torch.set_num_threads(1)
    retrofit(args.folder, args.out, args.quantize)


if __name__ == "__main__":
    main()
