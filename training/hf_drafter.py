"""
A DEER drafter for a Hugging Face verifier that is not this project's GPT (Qwen2, Llama, ...):
distil its greedy continuations with transformers, train a context-only drafter on them (stage I,
then stage II, training/train_drafter.py), export it and add it to the verifier's ONNX folder
(an optimum-cli export) as deer.json. Runs in the export venv (training/hf_exports.sh), which has
transformers on top of the training venv.

    python -m training.hf_drafter --model SRC --folder ONNX_FOLDER --texts 'src/**/*.ts' ...

SRC: the transformers folder (config.json, weights, tokenizer.json) the ONNX export was made from;
ONNX_FOLDER: that export (model.onnx at the top, as optimum-cli writes it), which gains
onnx/drafter.onnx and deer.json. Context-only: an Optimum graph has no hidden_states output.
The mask token is the first embedding row the tokenizer does not use (Qwen2.5 has 271 of them:
vocab_size 151936, tokenizer 151665), written to deer.json as a number; else the tokenizer's own
`<|mask|>`; else an error.
"""
import glob
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, asdict

import numpy as np
import torch

from training.cli import parse_config
from training.model import Drafter, DrafterConfig


@dataclass
class HFDrafterConfig:
    model: str = ""               # transformers folder of the verifier
    folder: str = ""              # its ONNX export: gets onnx/drafter.onnx and deer.json
    texts: str = ""               # glob(s) of text files, comma-separated (`**` recursive), or a docs.jsonl
    work: str = ""                # distillation data and checkpoints (default: FOLDER.work)
    n: int = 4096                 # distilled continuations
    ctx_len: int = 48             # prompt tokens per continuation
    k: int = 16                   # block size
    window: int = 32              # drafter context window (<= ctx_len)
    batch: int = 64               # continuations generated at once
    n_layer: int = 2
    head_tokens: int = 0          # > 0: score only the this many tokens the verifier writes most
    anchor: bool = True           # the pending token runs through the layers with the block (DrafterConfig.anchor)
    decay: float = 4.0            # block position i weighs exp(-(i-1)/decay) in the loss (0: off)
                                  # (both won an equal-time A/B on this project's hidden-state drafter: training/README.md)
    minutes1: float = 1.0         # stage I
    minutes2: float = 0.5         # stage II
    steps1: int = 0               # > 0: stage I stops after this many steps (or minutes1, whichever first)
    steps2: int = 0
    d_batch: int = 64
    seed: int = 0
    threads: int = 0


def read_texts(spec, limit_bytes=64 << 20):
    """Texts from comma-separated globs or a docs.jsonl (training/corpus.py), sorted, up to limit_bytes."""
    out, total = [], 0
    for pattern in spec.split(","):
        if pattern.endswith(".jsonl"):
            rows = (json.loads(line)["text"] for line in open(pattern))
        else:
            rows = (open(p, encoding="utf-8", errors="replace").read()
                    for p in sorted(glob.glob(pattern, recursive=True)) if os.path.isfile(p))
        for text in rows:
            out.append(text)
            total += len(text)
            if total >= limit_bytes:
                return out
    if not out:
        raise SystemExit(f"no text found in {spec!r}")
    return out


def choose_mask(tok, vocab_size):
    """(id, deer.json value): an embedding row the tokenizer never produces, else its <|mask|>."""
    used = tok.get_vocab_size(with_added_tokens=True)
    if used < vocab_size:
        return used, used
    mask = tok.token_to_id("<|mask|>")
    if mask is None:
        raise SystemExit(f"no mask token: the tokenizer uses every one of the model's {vocab_size} embedding rows "
                         "and has no <|mask|>; add one to the tokenizer and the embedding (resize_token_embeddings)")
    return mask, "<|mask|>"


def cut_contexts(texts, tok, n, ctx_len, rng):
    """n windows of ctx_len tokens ending at random points of the texts (all of one length, so one batch
    generates without padding)."""
    docs = [ids for ids in (tok.encode(t).ids for t in texts) if len(ids) > ctx_len]
    if not docs:
        raise SystemExit(f"no text longer than {ctx_len} tokens")
    weights = np.array([len(d) - ctx_len for d in docs], dtype=np.float64)
    picks = rng.choice(len(docs), size=n, p=weights / weights.sum())
    out = np.empty((n, ctx_len), dtype=np.int64)
    for i, d in enumerate(picks):
        end = int(rng.integers(ctx_len, len(docs[d]) + 1))
        out[i] = docs[d][end - ctx_len:end]
    return out


@torch.no_grad()
def distil(model, ctx, n_new, batch, log=print):
    """Greedy continuations (n, n_new) of each context, by transformers' generate with its KV cache."""
    gens, t0 = [], time.time()
    for i in range(0, len(ctx), batch):
        ids = torch.from_numpy(ctx[i:i + batch])
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n_new, min_new_tokens=n_new,
                             do_sample=False, pad_token_id=0, eos_token_id=None)
        gens.append(out[:, ids.shape[1]:].numpy())
        if (i // batch) % 20 == 0:
            log(f"distil {i + len(ids)}/{len(ctx)} {time.time() - t0:.0f}s")
    return np.concatenate(gens)


def build_drafter(model, train_cfg, mask_id):
    """A drafter shaped like the verifier's layers (heads, width, MLP), starting from its token embedding
    and final norm; its blocks start fresh (a foreign layer layout does not copy over)."""
    from training.train_drafter import drafter_config
    c = model.config
    d = Drafter(drafter_config(train_cfg, c.vocab_size, c.num_attention_heads, c.hidden_size, c.intermediate_size,
                               mask_id, rope_theta=float(getattr(c, "rope_theta", 10000.0)),
                               norm_eps=float(getattr(c, "rms_norm_eps", 1e-5))))
    with torch.no_grad():
        d.embed_tokens.weight.copy_(model.get_input_embeddings().weight.float())
        d.norm.weight.copy_(model.model.norm.weight.float())
    return d


def write_deer_json(folder, d: Drafter, mask_value, tok):
    """deer.json for an Optimum folder: its verifier, the drafter, the mask and the tokenizer's FIM tokens
    (prefix-suffix-middle, as the engine assumes for a folder without deer.json); EOS stays config.json's."""
    path = os.path.join(folder, "deer.json")
    deer = json.load(open(path)) if os.path.exists(path) else {"format": 1}
    verifier = next(f for f in ("model.onnx", "onnx/model.onnx") if os.path.exists(os.path.join(folder, f)))
    deer.setdefault("verifier", {"file": verifier})
    deer.setdefault("drafters", {})["deer"] = {"file": "onnx/drafter.onnx", "block_size": d.cfg.block_size,
                                                "context_window": d.cfg.context_window, "conditioning": ["context"]}
    special = deer.setdefault("special_tokens", {})
    special["mask"] = mask_value
    for key, spellings in (("fim_prefix", ("<fim_prefix>", "<|fim_prefix|>")), ("fim_middle", ("<fim_middle>", "<|fim_middle|>")),
                           ("fim_suffix", ("<fim_suffix>", "<|fim_suffix|>"))):
        found = next((s for s in spellings if tok.token_to_id(s) is not None), None)
        if found:
            special.setdefault(key, found)
    deer.setdefault("fim_order", "psm")
    with open(path, "w") as f:
        json.dump(deer, f, indent=2)
        f.write("\n")
    return deer


def run(cfg: HFDrafterConfig, log=print):
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM
    from training import export
    from training.train_drafter import DrafterTrainConfig, most_written, DistillData, train
    torch.set_num_threads(cfg.threads or os.cpu_count())
    assert cfg.window <= cfg.ctx_len
    work = cfg.work or cfg.folder.rstrip("/") + ".work"
    os.makedirs(work, exist_ok=True)
    tok = Tokenizer.from_file(os.path.join(cfg.model, "tokenizer.json"))
    model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.float32).eval()
    mask_id, mask_value = choose_mask(tok, model.config.vocab_size)
    log(f"verifier {model.config.model_type}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params, "
        f"vocab {model.config.vocab_size}, mask id {mask_id} ({mask_value!r} in deer.json)")

    rng = np.random.default_rng(cfg.seed)
    t0 = time.time()
    ctx = cut_contexts(read_texts(cfg.texts), tok, cfg.n, cfg.ctx_len, rng)
    gen = distil(model, ctx, cfg.k + 1, cfg.batch, log)
    dist = os.path.join(work, "distill.npz")
    np.savez(dist, ctx=ctx.astype(np.int32), gen=gen.astype(np.int32), window=cfg.window, K=cfg.k)
    distill_s = time.time() - t0
    log(f"distilled {len(ctx)} continuations of {cfg.k + 1} tokens in {distill_s:.0f}s")

    common = dict(distill=dist, k=cfg.k, window=cfg.window, n_layer=cfg.n_layer, head_tokens=cfg.head_tokens,
                  kv_context=True, anchor=cfg.anchor, decay=cfg.decay, batch_size=cfg.d_batch, seed=cfg.seed, threads=cfg.threads, log_every=50,
                  eos_id=-1)                               # generated without stopping: no padding
    s1, s2 = os.path.join(work, "drafter-s1.pt"), os.path.join(work, "drafter-s2.pt")
    stage1 = DrafterTrainConfig(out=s1, stage=1, minutes=cfg.minutes1, max_steps=cfg.steps1 or 10**9, **common)
    d = build_drafter(model, stage1, mask_id)
    if cfg.head_tokens:
        d.head_ids.copy_(most_written(DistillData(dist, 0.05), cfg.head_tokens, d.cfg.vocab_size, mask_id))
    d, r1 = train(stage1, log, model=d)
    d, r2 = train(DrafterTrainConfig(out=s2, stage=2, init=s1, lr=5e-4, min_lr=5e-5, minutes=cfg.minutes2,
                                     max_steps=cfg.steps2 or 10**9, **common), log)
    d.eval()

    os.makedirs(os.path.join(cfg.folder, "onnx"), exist_ok=True)
    fp32 = os.path.join(work, "drafter-fp32.onnx")
    final = os.path.join(cfg.folder, "onnx", "drafter.onnx")
    export.export_drafter(d, fp32)
    export.quantize(fp32, final)
    parity = export.check_drafter(d, final, ctx[0, -cfg.window:].tolist())
    deer = write_deer_json(cfg.folder, d, mask_value, tok)
    report = {"distilled": len(ctx), "distill_s": distill_s, "mask_id": mask_id, "stage1": r1["eval"], "stage2": r2["eval"],
              "steps": [r1["steps"], r2["steps"]], "parity_int8": parity, "deer_json": deer, "config": asdict(cfg)}
    with open(os.path.join(work, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    log(f"drafter for {cfg.folder}: one-step tau {r2['eval']['tau_one_step']:.2f} on held-out continuations, "
        f"int8 parity {parity}")
    return report


if __name__ == "__main__":
    run(parse_config(HFDrafterConfig))
