"""
Export trained checkpoints to the model folder the engine reads (docs/model-folder.md):

  config.json, generation_config.json, tokenizer.json, tokenizer_config.json,
  onnx/model.onnx (verifier, Optimum KV-cache layout, optional hidden_states),
  onnx/drafter.onnx (DEER drafter), onnx/ar.onnx (small AR draft model), deer.json.

Then optional int8 quantization (quantize(): int8 weights, fp32 compute in the verifier so
speculative output equals plain decoding, int8 compute in the draft models; optionally
int8_compute_verifier(), exact too) and parity checks against PyTorch.

    python -m training.export --verifier V.pt --drafter D.pt --ar A.pt \
        --tokenizer tok.json --out models/default --quantize
"""
import argparse
import json
import os
import shutil
import warnings

import numpy as np
import torch
import torch.nn as nn

from training.model import GPT, GPTConfig, Drafter, DrafterConfig
from training import tokenizer as toklib

OPSET = 17
# int8 weights: one scale per this many input channels of an output channel (0: per channel)
QUANT_BLOCK = 128


# ----------------------------------------------------------------------------- checkpoints

def save_checkpoint(path, model, extra=None):
    kind = "drafter" if isinstance(model, Drafter) else "gpt"
    from dataclasses import asdict
    torch.save({"kind": kind, "config": asdict(model.cfg), "model": model.state_dict(),
                "extra": extra or {}}, path)


RUN_RECORD = "training_run.json"   # in a model folder: what its verifier was trained on, so that a run from it counts on


def training_record(result):
    """The cumulative record of a finished verifier checkpoint's `extra` (steps, tokens, minutes, sessions)."""
    c = result.get("cumulative", result)
    return {k: c[k] for k in ("steps", "tokens", "train_time_s", "sessions") if k in c}


def load_checkpoint(path):
    ck = torch.load(path, map_location="cpu", weights_only=False)
    if ck["kind"] == "drafter":
        m = Drafter(DrafterConfig(**ck["config"]))
    else:
        m = GPT(GPTConfig(**ck["config"]))
    m.load_state_dict(ck["model"])
    m.eval()
    return m, ck.get("extra", {})


# ----------------------------------------------------------------------------- ONNX wrappers

class VerifierOnnx(nn.Module):
    """Flat-argument wrapper: (input_ids, attention_mask, position_ids[, tree_mask], k0, v0, k1, v1, ...)."""

    def __init__(self, gpt: GPT, with_hidden: bool, with_tree: bool = False, taps=()):
        super().__init__()
        self.gpt, self.with_hidden, self.with_tree, self.taps = gpt, with_hidden, with_tree, tuple(taps)

    def forward(self, input_ids, attention_mask, position_ids, *rest):
        tree_mask, past_flat = (rest[0], rest[1:]) if self.with_tree else (None, rest)
        past = [(past_flat[2 * i], past_flat[2 * i + 1]) for i in range(len(past_flat) // 2)]
        logits, presents, h = self.gpt.forward_cached(input_ids, attention_mask, position_ids, past, tree_mask, self.taps)
        outs = [logits]
        for k, v in presents:
            outs += [k, v]
        if self.with_hidden:
            outs.append(h)
        return tuple(outs)


class DrafterOnnx(nn.Module):
    """input_ids (1, c+k) ending in k mask tokens [, hidden_states (1, c, H)] [, suffix_ids (1, s)]
    -> logits (1, k, V). k is the number of <|mask|> tokens in input_ids (they are the last k).
    A drafter with a reduced head returns its N scores instead, logits (1, k, N), and head_ids (N,),
    the token id of each score (docs/model-folder.md): no scatter into a (k, V) row of -1e9 per pass."""

    def __init__(self, drafter: Drafter):
        super().__init__()
        self.d = drafter

    def forward(self, input_ids, hidden_states=None, suffix_ids=None):
        k = (input_ids[0] == self.d.cfg.mask_id).sum()
        c = input_ids.shape[1] - k
        if self.d.cfg.head_tokens > 0:
            return self.d.block_logits(input_ids, hidden_states, c, k, suffix_ids, full=False), self.d.head_ids + 0
        return self.d.block_logits(input_ids, hidden_states, c, k, suffix_ids)


def _export(module, args, path, input_names, output_names, dynamic_axes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, path, input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=OPSET, do_constant_folding=True,
                          dynamo=False)


def export_verifier(gpt: GPT, path, with_hidden=False, with_tree=False, taps=(), value_normalised=False):
    """with_tree: the graph also takes tree_mask (batch, q, q) int64 (docs/model-folder.md);
    taps: the blocks whose outputs make hidden_states (GPT.features); value_normalised: the
    attention normalised through the value product (model.Attention), for int8_compute_verifier."""
    cfg = gpt.cfg
    B, q, P = 1, 3, 2
    ids = torch.randint(0, cfg.vocab_size, (B, q))
    am = torch.ones(B, P + q, dtype=torch.long)
    pos = torch.arange(P, P + q)[None]
    past = []
    in_names = ["input_ids", "attention_mask", "position_ids"]
    out_names = ["logits"]
    dyn = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "total"},
           "position_ids": {0: "batch", 1: "seq"}, "logits": {0: "batch", 1: "seq"}}
    tree = ()
    if with_tree:
        tree = (torch.tril(torch.ones(B, q, q, dtype=torch.long)),)
        in_names.append("tree_mask")
        dyn["tree_mask"] = {0: "batch", 1: "seq", 2: "seq"}
    for i in range(cfg.n_layer):
        for kv in ("key", "value"):
            past.append(torch.randn(B, cfg.n_kv_head, P, cfg.head_dim))
            n_in, n_out = f"past_key_values.{i}.{kv}", f"present.{i}.{kv}"
            in_names.append(n_in)
            out_names.append(n_out)
            dyn[n_in] = {0: "batch", 2: "past"}
            dyn[n_out] = {0: "batch", 2: "total"}
    if with_hidden:
        out_names.append("hidden_states")
        dyn["hidden_states"] = {0: "batch", 1: "seq"}
    from training.model import Attention
    attention = [m for m in gpt.modules() if isinstance(m, Attention)]
    for m in attention:
        m.value_normalised = value_normalised
    try:
        _export(VerifierOnnx(gpt, with_hidden, with_tree, taps).eval(), (ids, am, pos, *tree, *past), path, in_names,
                out_names, dyn)
    finally:
        for m in attention:
            m.value_normalised = False


def export_drafter(drafter: Drafter, path):
    cfg = drafter.cfg
    c, k = 5, cfg.block_size
    ids = torch.randint(7, cfg.vocab_size, (1, c + k))
    ids[:, c:] = cfg.mask_id
    args, in_names = (ids,), ["input_ids"]
    dyn = {"input_ids": {1: "ctx_plus_k"}, "logits": {1: "k"}}
    if cfg.hidden_size > 0:
        args = (ids, torch.randn(1, c, cfg.hidden_size))
        in_names.append("hidden_states")
        dyn["hidden_states"] = {1: "ctx"}
    if cfg.suffix_window > 0:
        args = (*args, torch.randint(7, cfg.vocab_size, (1, 3)))
        in_names.append("suffix_ids")
        dyn["suffix_ids"] = {1: "suffix"}
    out_names = ["logits", "head_ids"] if cfg.head_tokens > 0 else ["logits"]
    _export(DrafterOnnx(drafter).eval(), args, path, in_names, out_names, dyn)
    fix_drafter_outputs(path, cfg.head_tokens if cfg.head_tokens > 0 else cfg.vocab_size)


def fix_drafter_outputs(path, size):
    """Declare the logits' last dim where shape inference left it unknown (the engine checks it at
    load against config.json's vocab_size, or against head_ids), and give the constant head_ids,
    which the export leaves as a bare initializer under a number, a node and its name."""
    import onnx
    from onnx import helper
    m = onnx.load(path)
    dim = m.graph.output[0].type.tensor_type.shape.dim
    if len(dim) == 3 and not dim[2].HasField("dim_value"):
        dim[2].Clear()
        dim[2].dim_value = size
    if len(m.graph.output) == 2:
        produced = {o for n in m.graph.node for o in n.output}
        ids = m.graph.output[1]
        if ids.name not in produced:
            m.graph.node.append(helper.make_node("Identity", [ids.name], ["head_ids"]))
            ids.name = "head_ids"
    onnx.save(m, path)


def drafter_vocab_logits(outputs, vocab):
    """A drafter pass's outputs as (.., k, vocab) logits: a reduced head's scores scattered to their ids."""
    if len(outputs) == 1:
        return outputs[0]
    sub, ids = outputs
    full = np.full(sub.shape[:-1] + (vocab,), -1e9, dtype=sub.dtype)
    full[..., ids] = sub
    return full


def _int8_rows(w, block):
    """Symmetric int8 of w (rows, cols), one scale per `block` columns of a row (block 0: the whole
    row). Returns q int8 (rows, cols) and scales float32 (rows, cols // block)."""
    rows, cols = w.shape
    block = block if block and cols % block == 0 else cols
    wb = w.reshape(rows, cols // block, block)
    scale = np.abs(wb).max(-1) / 127.0
    scale[scale == 0] = 1.0
    q = np.clip(np.round(wb / scale[..., None]), -127, 127).astype(np.int8)
    return q.reshape(rows, cols), scale.astype(np.float32)


def quantize(path_in, path_out, block=QUANT_BLOCK, int8_activations=False):
    """Weight-only int8: every MatMul weight and embedding table (a Gather indexed by a graph input)
    is stored as int8 rows (one row per output channel / per token) with float scales, and turned
    back into float by Cast -> Mul [-> Transpose] on those constants. onnxruntime folds that at load,
    so every pass computes in fp32 on the dequantized weights and no activation is quantized: a
    position's logits do not depend on the other tokens of the pass (float rounding aside), and
    speculative output equals plain decoding. A LM head tied to the embedding (its weight is the
    table transposed) shares the table's int8 copy.

    int8_activations (for draft models only, whose proposals the verifier checks anyway): every
    untied MatMul weight becomes int8 columns with one scale per output channel, computed by
    onnxruntime's DynamicQuantizeMatMul, which quantizes the activations per pass and multiplies in
    int8. A drafter pass is compute-bound (tens of rows through every weight), and this runs it
    2-3x faster on an AVX2 CPU; the logits move by quantization noise, which changes what is drafted,
    never what is output. Embedding tables and tied heads stay weight-only.
    Returns {"int8": tensors quantized, "tied": n, "int8_activations": MatMuls computed in int8}."""
    import onnx
    from onnx import helper, numpy_helper
    model = onnx.load(path_in)
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    graph_inputs = {i.name for i in g.input}
    arrays = {}

    def weight(name):
        t = inits.get(name)
        if t is None or len(t.dims) != 2 or t.data_type != onnx.TensorProto.FLOAT:
            return None
        if name not in arrays:
            arrays[name] = numpy_helper.to_array(t)
        return arrays[name]

    tables = {n.input[0] for n in g.node if n.op_type == "Gather" and n.input[1] in graph_inputs
              and weight(n.input[0]) is not None}
    pre, new_inits, dequantized = [], [], {}

    def dequantize(name, rows):
        """Name of the float (rows) tensor rebuilt from int8 rows of `name`."""
        if name not in dequantized:
            q, scale = _int8_rows(rows, block)
            r, c = rows.shape
            nb = scale.shape[1]
            new_inits.extend([numpy_helper.from_array(q.reshape(r, nb, c // nb), f"{name}.int8"),
                              numpy_helper.from_array(scale[..., None], f"{name}.scale"),
                              numpy_helper.from_array(np.array([r, c], dtype=np.int64), f"{name}.shape")])
            pre.extend([helper.make_node("Cast", [f"{name}.int8"], [f"{name}.cast"], to=onnx.TensorProto.FLOAT),
                        helper.make_node("Mul", [f"{name}.cast", f"{name}.scale"], [f"{name}.blocks"]),
                        helper.make_node("Reshape", [f"{name}.blocks", f"{name}.shape"], [f"{name}.dequantized"])])
            dequantized[name] = f"{name}.dequantized"
        return dequantized[name]

    int8_columns = {}

    def columns(name, w):
        """Names of the int8 (in, out) columns of weight `name` and their per-output-channel scales."""
        if name not in int8_columns:
            q, scale = _int8_rows(np.ascontiguousarray(w.T), 0)
            new_inits.extend([numpy_helper.from_array(np.ascontiguousarray(q.T), f"{name}.int8cols"),
                              numpy_helper.from_array(scale[:, 0].copy(), f"{name}.colscale")])
            int8_columns[name] = [f"{name}.int8cols", f"{name}.colscale"]
        return int8_columns[name]

    tied = int8_compute = 0
    for n in g.node:
        if n.op_type == "Gather" and n.input[0] in tables:
            n.input[0] = dequantize(n.input[0], weight(n.input[0]))
        elif n.op_type == "MatMul" and weight(n.input[1]) is not None:
            w = weight(n.input[1])                                   # (in, out)
            source = next((t for t in tables if weight(t).shape == w.T.shape and np.array_equal(weight(t), w.T)), None)
            tied += source is not None
            if int8_activations and source is None:
                n.op_type, n.domain = "DynamicQuantizeMatMul", "com.microsoft"
                n.input[1:] = columns(n.input[1], w)
                int8_compute += 1
                continue
            rows = dequantize(source, weight(source)) if source else dequantize(n.input[1], np.ascontiguousarray(w.T))
            pre.append(helper.make_node("Transpose", [rows], [f"{n.input[1]}.transposed"], perm=[1, 0]))
            n.input[1] = f"{n.input[1]}.transposed"
    nodes = pre + list(g.node)
    g.ClearField("node")
    g.node.extend(nodes)
    g.initializer.extend(new_inits)
    from training.static_shapes import drop_unused
    drop_unused(g)  # the float weights now stored as int8
    if int8_compute and not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.checker.check_model(model)
    onnx.save(model, path_out)
    return {"int8": len(dequantized) + int8_compute, "tied": tied, "int8_activations": int8_compute}


# a pass over fewer tokens than this takes another kernel path in int8_compute_verifier's graphs
INT8_COMPUTE_MIN_TOKENS = 2


def int8_compute_verifier(path_in, path_out):
    """A weight-only int8 verifier (quantize()) whose matrix products compute in int8: each
    MatMul on dequantized int8 rows becomes onnxruntime's MatMulNBits (8 bits, the same blocks
    and scales, uint8 = int8 + 128, so the weights are unchanged) at accuracy_level 4, which
    quantizes each activation row in blocks of the weight's block size and multiplies in int8.
    The embedding table is read from the same uint8 rows (Gather, then Cast/Sub/Mul), so the
    file keeps one copy of the tied table. No fp32 weights are made at load: a one-token pass reads
    a quarter of the bytes.

    Exactness: a row's logits depend only on that row (the quantization is per row) for passes of
    INT8_COMPUTE_MIN_TOKENS tokens or more; a one-token pass goes through another kernel (its
    logits differ by up to ~0.2), so the folder declares verifier.min_tokens_per_pass and the
    engine pads shorter passes. A draft tree's node must also reach its products with the very
    bits of a chain pass over its path: export_verifier(value_normalised=True) normalises the
    attention through the value product for that (a Softmax graph is refused). Measured in session 15 with onnxruntime
    1.30-1.32 on an AVX2 CPU: bit-identical logits for chains split any way into passes of 2+
    tokens and for tree nodes against chains, at 200-1900 cached positions.
    Returns {"int8_compute": products converted, "embedding": tables}."""
    import onnx
    from onnx import helper, numpy_helper
    m = onnx.load(path_in)
    g = m.graph
    if any(n.op_type == "Softmax" for n in g.node) and any(i.name == "tree_mask" for i in g.input):
        raise ValueError(f"{path_in}: its attention normalises with Softmax, so a draft tree's nodes differ from chain "
                         "passes by float rounding that int8 activations amplify; export it with "
                         "export_verifier(value_normalised=True) (python -m training.retrofit_int8 --verifier re-exports a folder's)")
    inits = {t.name: t for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    u8 = {}

    def rows(src):
        """uint8 rows (N, blocks, block) and scales (N, blocks) of a quantize() tensor."""
        if src not in u8:
            q = numpy_helper.to_array(inits[f"{src}.int8"])
            scale = numpy_helper.to_array(inits[f"{src}.scale"])[..., 0]
            u8[src] = (q.shape, scale)
            g.initializer.extend([numpy_helper.from_array((q.astype(np.int16) + 128).astype(np.uint8), f"{src}.u8"),
                                  numpy_helper.from_array(scale.reshape(-1).astype(np.float32), f"{src}.u8scale")])
        return u8[src]

    converted = tables = 0
    for n in list(g.node):
        i = list(g.node).index(n)
        if n.op_type == "MatMul" and n.input[1].endswith(".transposed"):
            src = producer[n.input[1]].input[0][: -len(".dequantized")]
            (N, blocks, block), _ = rows(src)
            if block < 16 or block & (block - 1):
                raise ValueError(f"{path_in}: {src} has int8 blocks of {block} inputs; MatMulNBits takes a power of "
                                 f"two from 16 (its inputs must be a multiple of QUANT_BLOCK = {QUANT_BLOCK})")
            g.node.remove(n)
            g.node.insert(i, helper.make_node("MatMulNBits", [n.input[0], f"{src}.u8", f"{src}.u8scale"], list(n.output),
                                              domain="com.microsoft", K=blocks * block, N=N, bits=8, block_size=block,
                                              accuracy_level=4))
            converted += 1
        elif n.op_type == "Gather" and n.input[0].endswith(".dequantized"):
            src = n.input[0][: -len(".dequantized")]
            (N, blocks, block), scale = rows(src)
            g.initializer.extend([numpy_helper.from_array(scale[..., None].astype(np.float32), f"{src}.rowscale"),
                                  numpy_helper.from_array(np.array([0, 0, blocks * block], np.int64), f"{src}.rowshape"),
                                  numpy_helper.from_array(np.array(128.0, np.float32), f"{src}.zero")])
            ids, out, p = n.input[1], n.output[0], f"{src}.gathered"
            g.node.remove(n)
            for j, node in enumerate([
                helper.make_node("Gather", [f"{src}.u8", ids], [f"{p}.u8"], axis=0),           # (1, q, blocks, block)
                helper.make_node("Gather", [f"{src}.rowscale", ids], [f"{p}.scale"], axis=0),  # (1, q, blocks, 1)
                helper.make_node("Cast", [f"{p}.u8"], [f"{p}.float"], to=onnx.TensorProto.FLOAT),
                helper.make_node("Sub", [f"{p}.float", f"{src}.zero"], [f"{p}.centred"]),
                helper.make_node("Mul", [f"{p}.centred", f"{p}.scale"], [f"{p}.blocks"]),
                helper.make_node("Reshape", [f"{p}.blocks", f"{src}.rowshape"], [out]),
            ]):
                g.node.insert(i + j, node)
            tables += 1
    from training.static_shapes import drop_unused
    drop_unused(g)  # the dequantization chains nothing reads any more
    if not any(o.domain == "com.microsoft" for o in m.opset_import):
        m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(m, path_out)
    return {"int8_compute": converted, "embedding": tables}


def is_weight_only_int8(path):
    """True for a graph written by quantize(): int8 weights, no activation quantization."""
    import onnx
    m = onnx.load(path, load_external_data=False)
    ops = {n.op_type for n in m.graph.node}
    return any(t.data_type == onnx.TensorProto.INT8 for t in m.graph.initializer) and not (
        ops & {"DynamicQuantizeLinear", "MatMulInteger", "QuantizeLinear", "DynamicQuantizeMatMul"})


# ----------------------------------------------------------------------------- parity

def _session(path):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_verifier_step(sess, n_layer, n_kv, hs, ids, past, past_len):
    """One verifier pass through onnxruntime. ids (1, q) int64 numpy; past: list of arrays."""
    q = ids.shape[1]
    feed = {"input_ids": ids,
            "attention_mask": np.ones((1, past_len + q), dtype=np.int64),
            "position_ids": np.arange(past_len, past_len + q, dtype=np.int64)[None]}
    if "tree_mask" in {i.name for i in sess.get_inputs()}:
        feed["tree_mask"] = np.tril(np.ones((1, q, q), dtype=np.int64))  # a chain
    for i in range(n_layer):
        feed[f"past_key_values.{i}.key"] = past[2 * i]
        feed[f"past_key_values.{i}.value"] = past[2 * i + 1]
    outs = sess.run(None, feed)
    names = [o.name for o in sess.get_outputs()]
    res = dict(zip(names, outs))
    presents = [res[f"present.{i}.{kv}"] for i in range(n_layer) for kv in ("key", "value")]
    return res["logits"], presents, res.get("hidden_states")


def ort_greedy(path, gpt_cfg, prompt_ids, n_new, chunk=None):
    """Greedy decoding with the ONNX verifier and its KV cache, starting from past length 0.
    chunk: feed the prompt in pieces of this size (tests cache reuse at past > 0)."""
    sess = _session(path)
    L, nkv, hs = gpt_cfg.n_layer, gpt_cfg.n_kv_head, gpt_cfg.head_dim
    past = [np.zeros((1, nkv, 0, hs), dtype=np.float32) for _ in range(2 * L)]
    P = 0
    ids = list(prompt_ids)
    chunk = chunk or len(ids)
    for s in range(0, len(ids), chunk):
        piece = np.array([ids[s:s + chunk]], dtype=np.int64)
        logits, past, _ = ort_verifier_step(sess, L, nkv, hs, piece, past, P)
        P += piece.shape[1]
    out = []
    for _ in range(n_new):
        nxt = int(logits[0, -1].argmax())
        out.append(nxt)
        logits, past, _ = ort_verifier_step(sess, L, nkv, hs, np.array([[nxt]], dtype=np.int64), past, P)
        P += 1
    return out


@torch.no_grad()
def check_verifier(gpt: GPT, path, prompt_ids, n_new=16, atol=None, taps=()):
    """Parity: logits of the full prompt (past 0) and greedy continuations (PyTorch vs ORT), and the
    hidden states (with taps, GPT.features) where the graph has them.
    Returns a dict with max_abs_diff and whether the greedy tokens match."""
    sess = _session(path)
    cfg = gpt.cfg
    ids = np.array([prompt_ids], dtype=np.int64)
    past0 = [np.zeros((1, cfg.n_kv_head, 0, cfg.head_dim), dtype=np.float32) for _ in range(2 * cfg.n_layer)]
    ort_logits, _, ort_hidden = ort_verifier_step(sess, cfg.n_layer, cfg.n_kv_head, cfg.head_dim, ids, past0, 0)
    pt_logits, _, pt_hidden = gpt(torch.from_numpy(ids), return_hidden=True, taps=taps)
    diff = float(np.abs(ort_logits - pt_logits.numpy()).max())
    pt_greedy = gpt.generate_greedy(torch.from_numpy(ids), n_new)[0].tolist()
    ort_g = ort_greedy(path, cfg, prompt_ids, n_new)
    batch_diff = multi_vs_single_diff(sess, cfg, prompt_ids)
    ort_g_chunked = ort_greedy(path, cfg, prompt_ids, n_new, chunk=max(1, len(prompt_ids) // 3))
    rep = {"max_abs_logit_diff": diff, "greedy_match": pt_greedy == ort_g == ort_g_chunked,
           "greedy_agree_prefix": _agree(pt_greedy, ort_g), "n_new": n_new,
           "max_abs_multi_vs_single_diff": batch_diff}
    if ort_hidden is not None:
        assert ort_hidden.shape == tuple(pt_hidden.shape), f"hidden_states {ort_hidden.shape}, PyTorch {tuple(pt_hidden.shape)}"
        rep["max_abs_hidden_diff"] = float(np.abs(ort_hidden - pt_hidden.numpy()).max())
    if "tree_mask" in {i.name for i in sess.get_inputs()}:
        rep["tree_max_abs_logit_diff"] = check_tree(gpt, path, prompt_ids)
    return rep


def multi_vs_single_diff(sess, cfg, prompt_ids, q=8):
    """Max |logit difference| between one pass over the last q prompt tokens and q one-token passes
    over them (same cache before): what speculative verification relies on being float rounding
    (~1e-5), not quantization noise that depends on the other tokens of the pass."""
    L, nkv, hs = cfg.n_layer, cfg.n_kv_head, cfg.head_dim
    ids = list(prompt_ids)
    q = min(q, len(ids) - 1)
    P = len(ids) - q
    past = [np.zeros((1, nkv, 0, hs), dtype=np.float32) for _ in range(2 * L)]
    _, past, _ = ort_verifier_step(sess, L, nkv, hs, np.array([ids[:P]], dtype=np.int64), past, 0)
    multi, _, _ = ort_verifier_step(sess, L, nkv, hs, np.array([ids[P:]], dtype=np.int64), past, P)
    single = []
    for j in range(q):
        lg, past, _ = ort_verifier_step(sess, L, nkv, hs, np.array([[ids[P + j]]], dtype=np.int64), past, P + j)
        single.append(lg[0, 0])
    return float(np.abs(multi[0] - np.stack(single)).max())


@torch.no_grad()
def check_drafter(drafter: Drafter, path, ctx_ids, hidden=None):
    sess = _session(path)
    cfg = drafter.cfg
    k = cfg.block_size
    ids = torch.tensor([list(ctx_ids) + [cfg.mask_id] * k])
    feed = {"input_ids": ids.numpy()}
    if cfg.hidden_size > 0:
        feed["hidden_states"] = hidden.numpy()
    suffix = None
    if cfg.suffix_window > 0:   # longer than the window: the graph must use only its first suffix_window
        suffix = torch.tensor([list(ctx_ids[:3]) * (cfg.suffix_window // 3 + 2)])
        feed["suffix_ids"] = suffix.numpy()
    ort_logits = drafter_vocab_logits(sess.run(None, feed), cfg.vocab_size)
    pt_logits = drafter(ids, hidden, k=k, suffix_ids=suffix)
    diff = float(np.abs(ort_logits - pt_logits.numpy()).max())
    same = (ort_logits.argmax(-1) == pt_logits.numpy().argmax(-1)).mean()
    return {"max_abs_logit_diff": diff, "argmax_agreement": float(same)}


def onnx_loss(path, gpt_cfg, rows):
    """Mean next-token cross-entropy of an ONNX verifier on token rows (list of lists), past 0."""
    sess = _session(path)
    tot, n = 0.0, 0
    for r in rows:
        ids = np.array([r], dtype=np.int64)
        past = [np.zeros((1, gpt_cfg.n_kv_head, 0, gpt_cfg.head_dim), dtype=np.float32) for _ in range(2 * gpt_cfg.n_layer)]
        logits, _, _ = ort_verifier_step(sess, gpt_cfg.n_layer, gpt_cfg.n_kv_head, gpt_cfg.head_dim, ids, past, 0)
        lp = torch.log_softmax(torch.from_numpy(logits[0, :-1]), -1)
        tot += -lp[torch.arange(len(r) - 1), torch.tensor(r[1:])].sum().item()
        n += len(r) - 1
    return tot / n


def ancestor_mask(parents):
    """parents[i] < i (-1 for the root) -> (q, q) int64: 1 where j is i or an ancestor of i."""
    q = len(parents)
    m = np.zeros((q, q), dtype=np.int64)
    for i, p in enumerate(parents):
        if p >= 0:
            m[i] = m[p]
        m[i, i] = 1
    return m


@torch.no_grad()
def check_tree(gpt: GPT, path, prompt_ids, parents=(-1, 0, 0, 1, 1, 2, 3, 3, 6), seed=0):
    """Tree parity: after an ORT prefill of prompt_ids[:-1], one pass over a draft tree rooted at
    the last prompt token (ancestor-only tree_mask, positions past + depth); each node's logits
    must equal PyTorch's for a fresh run of its path. Returns the max abs difference."""
    sess = _session(path)
    cfg = gpt.cfg
    L, nkv, hs = cfg.n_layer, cfg.n_kv_head, cfg.head_dim
    prefix = list(prompt_ids[:-1])
    past = [np.zeros((1, nkv, 0, hs), dtype=np.float32) for _ in range(2 * L)]
    _, past, _ = ort_verifier_step(sess, L, nkv, hs, np.array([prefix], dtype=np.int64), past, 0)
    g = torch.Generator().manual_seed(seed)
    tokens = [prompt_ids[-1]] + torch.randint(7, cfg.vocab_size, (len(parents) - 1,), generator=g).tolist()
    mask = ancestor_mask(parents)
    P, q = len(prefix), len(parents)
    feed = {"input_ids": np.array([tokens], dtype=np.int64),
            "attention_mask": np.ones((1, P + q), dtype=np.int64),
            "position_ids": (P + mask.sum(1) - 1)[None].astype(np.int64),
            "tree_mask": mask[None]}
    for i in range(L):
        feed[f"past_key_values.{i}.key"], feed[f"past_key_values.{i}.value"] = past[2 * i], past[2 * i + 1]
    logits = sess.run(["logits"], feed)[0]
    diff = 0.0
    for i in range(q):
        path_ids = prefix + [tokens[j] for j in range(q) if mask[i, j]]
        ref, _ = gpt(torch.tensor([path_ids]))
        diff = max(diff, float(np.abs(logits[0, i] - ref[0, -1].numpy()).max()))
    return diff


def _agree(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


# ----------------------------------------------------------------------------- folder

def hf_config(cfg: GPTConfig, eos_id):
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.n_embd,
        "intermediate_size": cfg.ffn_hidden, "num_hidden_layers": cfg.n_layer,
        "num_attention_heads": cfg.n_head, "num_key_value_heads": cfg.n_kv_head,
        "head_dim": cfg.head_dim, "max_position_embeddings": cfg.max_seq_len,
        "rms_norm_eps": cfg.norm_eps, "rope_theta": cfg.rope_theta,
        "tie_word_embeddings": True, "hidden_act": "silu",
        "bos_token_id": None, "eos_token_id": eos_id, "pad_token_id": eos_id,
        "torch_dtype": "float32", "use_cache": True,
    }


PARITY_PROBE = "def fibonacci(n):\n    if n < 2:\n        return n\n    return"   # the prompt parity checks run on


def probe_hidden(verifier: GPT, ids, taps=()):
    """The verifier's hidden states of ids as a drafter receives them: the last row (the pending bonus token) zero."""
    with torch.no_grad():
        _, _, hid = verifier(torch.tensor([ids]), return_hidden=True, taps=taps)
    hid = hid.clone()
    hid[:, -1] = 0.0
    return hid


def drafter_conditioning(cfg: DrafterConfig):
    """deer.json's `conditioning` of a drafter."""
    return ["context"] + (["hidden"] if cfg.hidden_size > 0 else []) + (["suffix"] if cfg.suffix_window > 0 else [])


def write_folder(out, verifier: GPT, tokenizer_path, drafter: Drafter = None, ar: GPT = None,
                 quantize_int8=False, verifier_hidden=None, check=True, quality_rows=None, log=print,
                 tree_attention=True, verifier_int8_compute=False):
    """Write the whole model folder. Returns a report dict (sizes, parity). quantize_int8: int8
    weights everywhere, int8 compute in the draft models; verifier_int8_compute: in the verifier
    too (int8_compute_verifier; exact with the min_tokens_per_pass it declares; faster on short
    contexts, slower to prefill: docs/engine.md, "An int8-compute verifier")."""
    os.makedirs(os.path.join(out, "onnx"), exist_ok=True)
    tmp = os.path.join(out, "onnx", "_fp32")
    os.makedirs(tmp, exist_ok=True)
    if verifier_hidden is None:
        verifier_hidden = drafter is not None and drafter.cfg.hidden_size > 0
    taps = tuple(drafter.cfg.hidden_layers) if verifier_hidden and drafter is not None else ()
    report = {"files": {}, "parity": {}}
    cfg = verifier.cfg
    shutil.copyfile(tokenizer_path, os.path.join(out, "tokenizer.json"))
    _json(os.path.join(out, "tokenizer_config.json"), toklib.tokenizer_config(cfg.max_seq_len))
    _json(os.path.join(out, "config.json"), hf_config(cfg, toklib.EOS))
    _json(os.path.join(out, "generation_config.json"), {"eos_token_id": toklib.EOS, "pad_token_id": toklib.EOS})
    from training.hf import save_verifier
    report["files"]["model.safetensors"] = os.path.getsize(save_verifier(verifier, out))

    tok = toklib.load(tokenizer_path)
    probe = tok.encode(PARITY_PROBE).ids
    items = [("model.onnx", verifier, "verifier")]
    if drafter is not None:
        items.append(("drafter.onnx", drafter, "drafter"))
    if ar is not None:
        items.append(("ar.onnx", ar, "ar"))
    for name, m, role in items:
        fp32 = os.path.join(tmp, name)
        final = os.path.join(out, "onnx", name)
        if role == "verifier":
            export_verifier(m, fp32, with_hidden=verifier_hidden, with_tree=tree_attention, taps=taps,
                            value_normalised=quantize_int8 and verifier_int8_compute)
        elif role == "ar":
            export_verifier(m, fp32, with_hidden=False)
        else:
            export_drafter(m, fp32)
        # constant shape arithmetic: fewer kernels per pass (training/static_shapes.py)
        from training.static_shapes import make_static
        report.setdefault("static_shapes", {})[name] = make_static(fp32, fp32, m.cfg.mask_id if role == "drafter" else None)
        log(f"static shapes {name}: {report['static_shapes'][name]}")
        if quantize_int8:
            report.setdefault("quantize", {})[name] = quantize(fp32, final, int8_activations=role != "verifier")
            if role == "verifier" and verifier_int8_compute:
                try:
                    report["quantize"]["verifier_int8_compute"] = int8_compute_verifier(final, final)
                except ValueError as e:
                    verifier_int8_compute = False
                    log(f"the verifier keeps fp32 compute on int8 weights: {e}")
            if role == "verifier" and quality_rows:
                report["int8_quality"] = {"val_loss_fp32_onnx": onnx_loss(fp32, m.cfg, quality_rows),
                                          "val_loss_int8_onnx": onnx_loss(final, m.cfg, quality_rows),
                                          "rows": len(quality_rows)}
                log(f"int8 quality: {report['int8_quality']}")
        else:
            shutil.copyfile(fp32, final)
        report["files"][f"onnx/{name}"] = os.path.getsize(final)
        if check:
            if role == "drafter":
                hid = probe_hidden(verifier, probe, taps) if m.cfg.hidden_size > 0 else None
                report["parity"][role] = check_drafter(m, final, probe, hid)
            else:
                report["parity"][role] = check_verifier(m, final, probe, taps=taps if role == "verifier" else ())
            log(f"parity {role} ({'int8' if quantize_int8 else 'fp32'}): {report['parity'][role]}")
    shutil.rmtree(tmp)

    deer = {
        "format": 1,
        "verifier": {"file": "onnx/model.onnx"},
        "drafters": {},
        "special_tokens": {
            "eos": "<|endoftext|>", "fim_prefix": "<fim_prefix>", "fim_middle": "<fim_middle>",
            "fim_suffix": "<fim_suffix>", "mask": "<|mask|>", "file_separator": "<|file_sep|>",
        },
        "fim_order": "spm",
    }
    if tree_attention:
        deer["verifier"]["tree_attention"] = True
    if quantize_int8 and verifier_int8_compute:
        deer["verifier"]["min_tokens_per_pass"] = INT8_COMPUTE_MIN_TOKENS
    if verifier_hidden:
        deer["verifier"]["hidden_states"] = {"output": "hidden_states", "size": cfg.n_embd * max(1, len(taps))}
        if taps:
            deer["verifier"]["hidden_states"]["layers"] = list(taps)
    if drafter is not None:
        deer["drafters"]["deer"] = {"file": "onnx/drafter.onnx", "block_size": drafter.cfg.block_size,
                                    "context_window": drafter.cfg.context_window,
                                    "conditioning": drafter_conditioning(drafter.cfg)}
    if ar is not None:
        deer["drafters"]["ar"] = {"file": "onnx/ar.onnx", "num_layers": ar.cfg.n_layer,
                                  "num_key_value_heads": ar.cfg.n_kv_head, "head_dim": ar.cfg.head_dim}
    _json(os.path.join(out, "deer.json"), deer)
    for f in ["tokenizer.json", "config.json", "deer.json"]:
        report["files"][f] = os.path.getsize(os.path.join(out, f))
    return report


def quantize_folder(src, dst):
    """Copy a model folder with every ONNX file of deer.json quantized by quantize(): the verifier
    weight-only, the draft models with int8 activations too."""
    shutil.copytree(src, dst, dirs_exist_ok=True)
    deer = json.load(open(os.path.join(src, "deer.json")))
    verifier = deer["verifier"]["file"]
    files = [verifier] + [d["file"] for d in deer.get("drafters", {}).values() if "file" in d]
    return {f: quantize(os.path.join(src, f), os.path.join(dst, f), int8_activations=f != verifier) for f in files}


def _json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--verifier", required=True)
    ap.add_argument("--drafter")
    ap.add_argument("--ar")
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--quantize", action="store_true",
                    help="int8 weights (the verifier computes in fp32: exact) and int8 compute in the draft models")
    ap.add_argument("--int8-compute", action="store_true",
                    help="with --quantize: the verifier computes in int8 too (exact: see int8_compute_verifier)")
    ap.add_argument("--report", help="write the parity / size report here (json)")
    ap.add_argument("--data", help="token dir: compare fp32 and int8 loss on validation rows")
    args = ap.parse_args()
    torch.set_num_threads(1)
    verifier, verifier_extra = load_checkpoint(args.verifier)
    drafter = load_checkpoint(args.drafter)[0] if args.drafter else None
    ar = load_checkpoint(args.ar)[0] if args.ar else None
    rows = None
    if args.data:
        from training.data import TokenData, Batcher
        b = Batcher(TokenData(args.data, "val"), seq_len=256, seed=123)
        rows = [b.row() for _ in range(16)]
    rep = write_folder(args.out, verifier, args.tokenizer, drafter, ar, quantize_int8=args.quantize, quality_rows=rows,
                       verifier_int8_compute=args.int8_compute)
    if "tokens" in verifier_extra:
        _json(os.path.join(args.out, RUN_RECORD), training_record(verifier_extra))
    print(json.dumps(rep, indent=2))
    if args.report:
        _json(args.report, rep)


if __name__ == "__main__":
    main()
