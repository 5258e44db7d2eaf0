"""
The verifier's PyTorch weights in Hugging Face layout: model.safetensors (bf16) next to
config.json, so training can continue from a shipped model folder and transformers'
LlamaForCausalLM loads it (same names, rotate-half RoPE, tied embeddings).

The safetensors format is written and read here directly: an 8-byte little-endian header
length, a JSON header {name: {dtype, shape, data_offsets}}, then the raw tensor bytes.
"""
import json
import os
import struct

import numpy as np
import torch

from training.model import GPT, GPTConfig

DTYPES = {torch.bfloat16: "BF16", torch.float32: "F32", torch.float16: "F16"}
BY_NAME = {v: k for k, v in DTYPES.items()}


def hf_name(key):
    return "model." + key  # embed_tokens.weight, layers.0.self_attn.q_proj.weight, norm.weight


def save_safetensors(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        dtype = BY_NAME[info["dtype"]]
        if dtype == torch.bfloat16:
            t = torch.from_numpy(np.frombuffer(data[a:b], dtype=np.int16).copy()).view(torch.bfloat16)
        else:
            t = torch.from_numpy(np.frombuffer(data[a:b], dtype={torch.float32: np.float32, torch.float16: np.float16}[dtype]).copy())
        out[name] = t.reshape(info["shape"])
    return out


def save_verifier(gpt: GPT, folder, dtype=torch.bfloat16):
    tensors = {hf_name(k): v.to(dtype) for k, v in gpt.state_dict().items()}
    path = os.path.join(folder, "model.safetensors")
    save_safetensors(path, tensors, {"format": "pt"})
    return path


def gpt_config_from_hf(cfg: dict) -> GPTConfig:
    return GPTConfig(vocab_size=cfg["vocab_size"], n_layer=cfg["num_hidden_layers"], n_head=cfg["num_attention_heads"],
                     n_kv_head=cfg["num_key_value_heads"], n_embd=cfg["hidden_size"],
                     ffn_hidden=cfg["intermediate_size"], max_seq_len=cfg["max_position_embeddings"],
                     rope_theta=cfg.get("rope_theta", 10000.0), norm_eps=cfg.get("rms_norm_eps", 1e-5))


def gpt_config(folder) -> GPTConfig:
    """The verifier's shape from a model folder's config.json."""
    return gpt_config_from_hf(json.load(open(os.path.join(folder, "config.json"))))


def load_verifier(folder) -> GPT:
    """A GPT (float32) from a model folder's config.json + model.safetensors."""
    gpt = GPT(gpt_config(folder))
    weights = load_safetensors(os.path.join(folder, "model.safetensors"))
    state = {k: weights[hf_name(k)].float() for k in gpt.state_dict()}
    gpt.load_state_dict(state)
    gpt.eval()
    return gpt
