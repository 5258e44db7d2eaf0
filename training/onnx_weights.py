"""
PyTorch modules rebuilt from the ONNX files training/export.py writes (fp32, or int8 weights
dequantized), for folders whose training checkpoints are gone: the shipped drafter's weights
exist only as onnx/drafter.onnx, and training continues from them.

    python -m training.onnx_weights models/default --out drafter.pt     # the folder's deer drafter
"""
import argparse
import json
import os
import re

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from training.model import GPT, GPTConfig, Drafter, DrafterConfig

PROJ = {"self_attn": ("q_proj", "k_proj", "v_proj", "o_proj"), "mlp": ("gate_proj", "up_proj", "down_proj")}
PART = {p: part for part, names in PROJ.items() for p in names}


def _weights(path):
    """-> the graph, its initializers, and weight(name): a constant as fp32, whether an initializer
    or computed from them (int8 rows dequantized by Cast, Mul and Reshape nodes)."""
    m = onnx.load(path)
    init = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    made_by = {o: n for n in m.graph.node for o in n.output}

    def weight(name):
        if name.endswith("_quantized") and name in init:                 # onnxruntime's per-tensor int8
            base = name[: -len("_quantized")]
            q, zp = init[name].astype(np.float32), init[base + "_zero_point"].astype(np.float32)
            return (q - zp) * init[base + "_scale"].astype(np.float32)
        if name.endswith(".int8cols"):                                    # export.quantize's int8 compute: W^T columns
            base = name[: -len(".int8cols")]
            return init[name].astype(np.float32) * init[base + ".colscale"].astype(np.float32)
        if name in init:
            return init[name].astype(np.float32)
        n = made_by[name]
        if n.op_type == "Cast":
            return weight(n.input[0])
        if n.op_type == "Mul":
            return weight(n.input[0]) * weight(n.input[1])
        if n.op_type == "Reshape":
            return weight(n.input[0]).reshape(init[n.input[1]])
        if n.op_type == "Transpose":
            perm = [list(a.ints) for a in n.attribute if a.name == "perm"]
            return weight(n.input[0]).transpose(*perm)
        raise ValueError(f"{path}: {name} is not a constant this reader knows ({n.op_type})")
    return m, init, weight


def gpt_from_onnx(path, cfg: GPTConfig) -> GPT:
    """Rebuild the PyTorch verifier from a graph exported by training/export.py."""
    m, init, weight = _weights(path)
    sd = {}
    for n in m.graph.node:
        if n.op_type == "Gather" and n.input[0].startswith("gpt.embed_tokens.weight"):
            sd["embed_tokens.weight"] = weight(n.input[0])
        hit = re.match(r"/layers\.(\d+)/(self_attn|mlp)/(\w+)/MatMul", n.name)
        if hit and n.op_type in ("MatMul", "MatMulInteger"):
            layer, part, proj = hit.groups()
            if proj in PROJ[part]:
                sd[f"layers.{layer}.{part}.{proj}.weight"] = weight(n.input[1]).T  # MatMul holds W^T
    for name, value in init.items():
        if name.startswith("gpt.") and name.endswith("layernorm.weight") or name == "gpt.norm.weight":
            sd[name[len("gpt."):]] = value
    gpt = GPT(cfg)
    _load(gpt, sd, path)
    return gpt.eval()


def drafter_from_onnx(path, cfg: DrafterConfig) -> Drafter:
    """Rebuild a PyTorch drafter from export.export_drafter's graph (its projections are traced as
    /layers.N/self_attn/q_proj/MatMul, or with kv_context as /q_proj/MatMul for the first block,
    /q_proj_1/MatMul for the second, ...; the head is the last weight MatMul: the embedding's rows,
    of head_ids for a reduced head)."""
    m, init, weight = _weights(path)
    sd, head = {}, None
    for n in m.graph.node:
        if n.op_type == "Gather" and n.name == "/embed_tokens/Gather":
            sd["embed_tokens.weight"] = weight(n.input[0])
        if n.op_type not in ("MatMul", "MatMulInteger", "DynamicQuantizeMatMul") or n.input[1].startswith("/"):
            continue
        hit = re.fullmatch(r"(?:/layers\.(\d+)/(?:self_attn|mlp))?/(?:mlp/)?(\w+?)(?:_(\d+))?/MatMul", n.name)
        if hit and hit.group(2) in PART:
            proj, layer = hit.group(2), int(hit.group(1) or hit.group(3) or 0)
            sd[f"layers.{layer}.{PART[proj]}.{proj}.weight"] = weight(n.input[1]).T
        elif n.name == "/hidden_proj/MatMul":
            sd["hidden_proj.weight"] = weight(n.input[1]).T
        else:
            head = weight(n.input[1]).T                                   # (head_tokens or vocab, C)
    for name, value in init.items():
        if name.startswith("d.") and name.endswith("norm.weight"):
            sd[name[len("d."):]] = value
    drafter = Drafter(cfg)
    if cfg.head_tokens:
        source = {n.output[0]: n.input[0] for n in m.graph.node if n.op_type == "Identity"}
        sd["head_ids"] = init[source.get("head_ids", "head_ids")].astype(np.int64)
        assert head is not None, f"{path}: no head weights"
    _load(drafter, sd, path)
    if cfg.head_tokens:                       # the head is the tied embedding's rows: keep the ones the head read
        with torch.no_grad():
            drafter.embed_tokens.weight[drafter.head_ids] = torch.from_numpy(np.array(head, dtype=np.float32))
    elif head is not None and head.shape != tuple(drafter.embed_tokens.weight.shape):
        raise ValueError(f"{path}: a head of {head.shape[0]} tokens; the drafter config says the whole vocabulary")
    return drafter.eval()


def _load(module, sd, path):
    missing = set(module.state_dict()) - set(sd)
    if missing:
        raise ValueError(f"{path}: cannot find weights for {sorted(missing)[:4]}...")
    module.load_state_dict({k: torch.from_numpy(np.array(v)) if v.dtype == np.int64 else
                            torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in sd.items()})


def drafter_config(folder, **fields) -> DrafterConfig:
    """The folder's deer drafter's shape: block and window from deer.json, widths from config.json,
    the rest (layers, head, anchor) from the graph's weights."""
    deer = json.load(open(os.path.join(folder, "deer.json")))["drafters"]["deer"]
    c = json.load(open(os.path.join(folder, "config.json")))
    m = onnx.load(os.path.join(folder, deer["file"]))
    inits = {i.name: list(i.dims) for i in m.graph.initializer}
    n_layer = len([n for n in inits if re.fullmatch(r"d\.layers\.\d+\.input_layernorm\.weight", n)])
    cond = deer.get("conditioning", [])
    return DrafterConfig(vocab_size=c["vocab_size"], n_layer=n_layer, n_head=c["num_attention_heads"],
                         n_embd=c["hidden_size"], ffn_hidden=c["intermediate_size"], block_size=deer["block_size"],
                         context_window=deer["context_window"],
                         hidden_size=c["hidden_size"] if "hidden" in cond else 0,
                         head_tokens=inits["head_ids"][0] if "head_ids" in inits else 0, **fields)


def drafter_from_folder(folder, **fields) -> Drafter:
    """The folder's deer drafter; fields the files do not record (kv_context, anchor) as given."""
    deer = json.load(open(os.path.join(folder, "deer.json")))["drafters"]["deer"]
    return drafter_from_onnx(os.path.join(folder, deer["file"]), drafter_config(folder, **fields))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("--out", required=True)
    ap.add_argument("--kv-context", action="store_true")
    ap.add_argument("--anchor", action="store_true")
    args = ap.parse_args()
    from training.export import save_checkpoint
    drafter = drafter_from_folder(args.folder, kv_context=args.kv_context, anchor=args.anchor)
    save_checkpoint(args.out, drafter)
    print(f"{args.out}: {drafter.cfg}")


if __name__ == "__main__":
    main()
