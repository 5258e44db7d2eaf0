"""Would onnxruntime's MatMulNBits kernel make the shipped verifier faster, and stay exact?

The export stores weights as int8 rows with one scale per 128 inputs (training/export.py quantize())
that onnxruntime folds back to fp32 at load. Those rows are exactly an 8-bit MatMulNBits weight
(uint8 = int8 + 128, the same blocks and scales), so this converts a shipped graph without any
change to the weights, at a given accuracy_level (0: fp32 compute, 4: int8 compute), then times a
verifier pass by tokens per pass and checks what speculative decoding relies on: one pass over 16
tokens gives the logits of 16 one-token passes (float rounding, ~1e-5), over 6 random prompts.

    .venv/bin/python bench/tools/matmul_nbits.py models/default/onnx/model.onnx [OUT_DIR]

Figures and reading: docs/engine.md, "Weights and quantization" (session 14).
"""
import json
import os
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from training.export import ort_verifier_step  # noqa: E402
from training.static_shapes import drop_unused  # noqa: E402


def to_matmul_nbits(path_in, path_out, accuracy_level):
    """MatMul(x, Transpose(dequantized int8 rows)) -> MatMulNBits(x, uint8 rows, scales)."""
    m = onnx.load(path_in)
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    added, converted = {}, 0
    for n in list(g.node):
        if n.op_type != "MatMul" or not n.input[1].endswith(".transposed"):
            continue
        src = producer[n.input[1]].input[0][: -len(".dequantized")]
        if src not in added:
            q = numpy_helper.to_array(inits[f"{src}.int8"])                  # (N, blocks, 128) int8
            scale = numpy_helper.to_array(inits[f"{src}.scale"])[..., 0]     # (N, blocks)
            added[src] = (q.shape, [numpy_helper.from_array((q.astype(np.int16) + 128).astype(np.uint8), f"{src}.u8"),
                                    numpy_helper.from_array(scale.reshape(-1).astype(np.float32), f"{src}.u8scale")])
        (N, blocks, block), _ = added[src]
        i = list(g.node).index(n)
        g.node.remove(n)
        g.node.insert(i, helper.make_node("MatMulNBits", [n.input[0], f"{src}.u8", f"{src}.u8scale"], list(n.output),
                                          domain="com.microsoft", K=blocks * block, N=N, bits=8, block_size=block,
                                          accuracy_level=accuracy_level))
        converted += 1
    g.initializer.extend(t for _, ts in added.values() for t in ts)
    drop_unused(g)  # the dequantization nodes only the converted products read
    m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(m, path_out)
    return converted


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def measure(path, cfg, past_len=300, reps=31):
    s = session(path)
    L, nkv, hd = cfg["num_hidden_layers"], cfg["num_key_value_heads"], cfg["head_dim"]
    rng = np.random.default_rng(0)
    past = [rng.standard_normal((1, nkv, past_len, hd)).astype(np.float32) for _ in range(2 * L)]
    row = {}
    for q in (1, 17, 33):
        ids = rng.integers(10, cfg["vocab_size"], (1, q)).astype(np.int64)
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            ort_verifier_step(s, L, nkv, hd, ids, past, past_len)
            times.append((time.perf_counter() - t) * 1000)
        row[f"q{q}_ms"] = round(float(np.median(times)), 2)
    worst = 0.0
    for seed in range(6):  # the gap depends on the input: several prompts
        ids = np.random.default_rng(seed).integers(10, cfg["vocab_size"], 216).tolist()
        empty = [np.zeros((1, nkv, 0, hd), dtype=np.float32) for _ in range(2 * L)]
        _, cache, _ = ort_verifier_step(s, L, nkv, hd, np.array([ids[:200]]), empty, 0)
        multi, _, _ = ort_verifier_step(s, L, nkv, hd, np.array([ids[200:]]), cache, 200)
        single = []
        for j in range(16):
            logits, cache, _ = ort_verifier_step(s, L, nkv, hd, np.array([[ids[200 + j]]]), cache, 200 + j)
            single.append(logits[0, 0])
        worst = max(worst, float(np.abs(multi[0] - np.stack(single)).max()))
    row["multi_vs_single_max_abs"] = worst
    return row


def main():
    src = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else "/tmp/matmul-nbits"
    os.makedirs(out, exist_ok=True)
    cfg = json.load(open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(src))), "config.json")))
    rows = {"shipped (int8 rows folded to fp32)": measure(src, cfg)}
    for level in (0, 4):
        path = os.path.join(out, f"accuracy-level-{level}.onnx")
        n = to_matmul_nbits(src, path, level)
        rows[f"MatMulNBits 8-bit, accuracy_level {level} ({n} products)"] = measure(path, cfg)
    print(json.dumps({"onnxruntime": ort.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
