"""
Put a newly trained DEER drafter into a model folder (a copy, or in place): exported as
export.write_folder would (constant shapes, int8 weights and compute), checked against PyTorch,
deer.json's drafter entry kept except the fields the drafter decides (block, window, conditioning).
The verifier, the `ar` model and the tokenizer are untouched, so the figures of both folders
compare drafters alone.

    python -m training.swap_drafter training/work/tf/B.pt --folder models/default --out /tmp/candidate
"""
import argparse
import json
import os
import shutil
import tempfile

import torch

from training import export
from training.hf import load_verifier
from training.static_shapes import make_static
from training.tokenizer import load as load_tokenizer


def swap(drafter_path, folder, out=None, log=print):
    out = out or folder
    if out != folder:
        shutil.copytree(folder, out, dirs_exist_ok=True)
    drafter, _ = export.load_checkpoint(drafter_path)
    drafter.eval()
    deer_path = os.path.join(out, "deer.json")
    deer = json.load(open(deer_path))
    entry = deer["drafters"]["deer"]
    final = os.path.join(out, entry["file"])
    tmp = tempfile.mkdtemp(prefix="deer-swap-")
    fp32 = os.path.join(tmp, "drafter.onnx")
    export.export_drafter(drafter, fp32)
    report = {"static_shapes": make_static(fp32, fp32, drafter.cfg.mask_id),
              "quantize": export.quantize(fp32, final, int8_activations=True)}
    shutil.rmtree(tmp)
    probe = load_tokenizer(os.path.join(out, "tokenizer.json")).encode(export.PARITY_PROBE).ids
    hidden = export.probe_hidden(load_verifier(out), probe, drafter.cfg.hidden_layers) if drafter.cfg.hidden_size > 0 else None
    report["parity"] = export.check_drafter(drafter, final, probe, hidden)
    entry.update(block_size=drafter.cfg.block_size, context_window=drafter.cfg.context_window,
                 conditioning=export.drafter_conditioning(drafter.cfg))
    export._json(deer_path, deer)
    log(json.dumps(report))
    return report


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("drafter", help="a train_drafter checkpoint")
    ap.add_argument("--folder", required=True)
    ap.add_argument("--out", help="write a copy here (default: in place)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    swap(args.drafter, args.folder, args.out)


if __name__ == "__main__":
    main()
