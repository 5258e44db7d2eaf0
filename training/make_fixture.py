"""
Build the tiny model folder the engine's tests use (test/fixtures/tiny-model/), with the
same pipeline as the real default model, at toy size and from local files only
(the Python standard library of the running interpreter):

corpus (local) -> tokenizer (vocab 1024) -> tokens -> verifier (tiny) -> ar (tiny)
-> distillation -> DEER drafter (context-conditioned, k=16) -> fp32 ONNX + parity, and its
weight-only int8 copy (test/fixtures/samples/tiny-model-int8/, the format models/default ships).

    python -m training.make_fixture [--out test/fixtures/tiny-model] [--seconds 60]
    python -m training.make_fixture --int8-only     (only the int8 copy, from the committed fp32 fixture)
"""
import argparse
import json
import os
import sysconfig
import tempfile

import torch

from training import corpus, data, distill, tokenizer as toklib
from training.export import quantize_folder, write_folder
from training.train import TrainConfig, train
from training.train_drafter import DrafterTrainConfig, train as train_drafter

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "test", "fixtures", "tiny-model")
INT8_FIXTURE = os.path.join(HERE, "..", "test", "fixtures", "samples", "tiny-model-int8")
# the fixture's verifier as onnxruntime's quantize_dynamic makes it (per-tensor activation
# quantization, not exact): what the engine's load-time check must name
PER_TENSOR_VERIFIER = os.path.join(HERE, "..", "test", "fixtures", "samples", "per-tensor-int8.onnx")
# the same verifier with int8 activations as export.quantize computes a drafter (fused DynamicQuantizeMatMul)
FUSED_INT8_VERIFIER = os.path.join(HERE, "..", "test", "fixtures", "samples", "int8-activations.onnx")


def build(out, seconds=60, work=None, vocab=1024, eval_dir=None, hidden=False, source_dir=None, log=print):
    """Run the toy pipeline end to end; returns the export report."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    work = work or tempfile.mkdtemp(prefix="deer-fixture-")
    stdlib = source_dir or sysconfig.get_paths()["stdlib"]
    src = {"languages": {"python": {"ext": [".py"], "weight": 1.0, "cap_mb": 3}}}
    cdir = os.path.join(work, "corpus")
    corpus.build(cdir, os.path.join(work, "src"), eval_dir, src, local=[f"{stdlib}:PSF-2.0:python-stdlib"],
                 log=lambda *a: None)
    docs = [json.loads(l)["text"] for l in open(os.path.join(cdir, "docs.jsonl"))]
    tok_path = os.path.join(work, "tokenizer.json")
    toklib.train_tokenizer(docs, vocab, tok_path)
    tdir = os.path.join(work, "tokens")
    data.prepare(cdir, tok_path, tdir, val_every=20, log=lambda *a: None)
    t = seconds / 60.0
    v, vres = train(TrainConfig(preset="tiny", data=tdir, out=os.path.join(work, "v.pt"), batch_size=16,
                                seq_len=128, minutes=0.5 * t, lr=3e-3, eval_every=10**9, log_every=50), log=log)
    a, _ = train(TrainConfig(preset="ar-tiny", data=tdir, out=os.path.join(work, "a.pt"), batch_size=16,
                             seq_len=128, minutes=0.15 * t, lr=3e-3, eval_every=10**9, log_every=50), log=log)
    dpath = os.path.join(work, "distill.npz")
    distill.make(os.path.join(work, "v.pt"), tdir, dpath, n=512, ctx_len=48, window=32, K=16, batch=64,
                 log=lambda *a: None)
    d, dres = train_drafter(DrafterTrainConfig(verifier=os.path.join(work, "v.pt"), distill=dpath,
                                               out=os.path.join(work, "d.pt"), k=16, window=32, n_layer=1,
                                               hidden=hidden, minutes=0.25 * t, batch_size=32, log_every=50),
                            log=log)
    rep = write_folder(out, v, tok_path, d, a, quantize_int8=False, log=log)
    rep["verifier_val_loss"] = vres["val_loss"]
    rep["drafter_eval"] = dres["eval"]
    return rep


def write_int8_copy(src=FIXTURE, dst=INT8_FIXTURE):
    """The fp32 fixture with weight-only int8 ONNX files (what the engine tests load as int8)."""
    rep = quantize_folder(src, dst)
    from onnxruntime.quantization import quantize_dynamic, QuantType
    quantize_dynamic(os.path.join(src, "onnx", "model.onnx"), PER_TENSOR_VERIFIER, weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul", "Gather"])
    from training.export import quantize
    quantize(os.path.join(src, "onnx", "model.onnx"), FUSED_INT8_VERIFIER, int8_activations=True)
    sizes = {f: os.path.getsize(os.path.join(dst, f)) for f in rep}
    open(os.path.join(dst, "README.md"), "w").write(f"""# tiny-model-int8 (test fixture)

test/fixtures/tiny-model with its ONNX files quantized the way models/default ships
(`training.export.quantize`): the verifier weight-only int8 (per-channel scales, the LM head sharing
the embedding's int8 table, float activations, so exact); the draft models with int8 activations
as well (onnxruntime's DynamicQuantizeMatMul; the tied head stays weight-only). Made by
`python -m training.make_fixture --int8-only`; training/tests/test_export.py checks it is exactly that.

Sizes: {json.dumps(sizes)}
""")
    return rep


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=FIXTURE)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--work")
    ap.add_argument("--hidden", action="store_true", help="drafter conditioned on verifier hidden states too")
    ap.add_argument("--int8-only", action="store_true", help="only rebuild the int8 copy of the committed fixture")
    args = ap.parse_args()
    if args.int8_only:
        print(json.dumps(write_int8_copy(), indent=1))
        return
    rep = build(args.out, args.seconds, args.work, hidden=args.hidden)
    readme = f"""# tiny-model (test fixture)

A toy model folder in the layout of docs/model-folder.md, for the engine's tests. It is
made by `python -m training.make_fixture` (about {args.seconds:.0f} s on 2 CPU cores) from the Python
standard library with the same pipeline as models/default: byte-level BPE (vocab 1024, FIM,
mask and file-separator tokens), a 2-layer verifier, a 1-layer `ar` draft model and a
1-layer DEER drafter (block 16, context window 32, conditioning {'["context", "hidden"]' if args.hidden else '["context"]'}), fp32 ONNX.
Its completions are nonsense-ish; only shapes, names, and consistency matter.

Parity (PyTorch vs onnxruntime): {json.dumps(rep['parity'])}
"""
    open(os.path.join(args.out, "README.md"), "w").write(readme)
    if os.path.abspath(args.out) == os.path.abspath(FIXTURE):
        write_int8_copy()
    print(json.dumps(rep, indent=1))


if __name__ == "__main__":
    main()
