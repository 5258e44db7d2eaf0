"""
Train the verifier (or the small `ar` draft model): next-token prediction on plain
documents and fill-in-the-middle examples (psm and spm), see training/data.py.

Single process:   python -m training.train --preset cpu --data training/work/tokens --out v.pt
Several GPUs:     torchrun --nproc_per_node=8 -m training.train --preset device ...
The run stops after --max-steps or --minutes, whichever comes first; the learning-rate
schedule (warmup, cosine to min_lr) follows the fraction of that budget spent.
"""
import json
import math
import os
import time
from dataclasses import dataclass, asdict

import torch
import torch.distributed as dist

from training.model import GPT, GPTConfig
from training.data import TokenData, Batcher
from training.cli import parse_config
from training.export import save_checkpoint

# model presets: (GPTConfig kwargs). vocab_size is taken from the tokenizer stats at run time.
PRESETS = {
    # the committed test fixture and CI smoke runs
    "tiny": dict(n_layer=2, n_head=4, n_kv_head=2, n_embd=64, ffn_hidden=192, max_seq_len=256),
    # trains on a shared 2-core CPU in under an hour (~3.4M params, 2.1M of them the tied
    # embedding at vocab 16384); measured ~200-600 tokens/s there, so it sees only a few M tokens
    "cpu": dict(n_layer=6, n_head=4, n_kv_head=2, n_embd=128, ffn_hidden=384, max_seq_len=512),
    # one device call (~8 min on an H100/H200): ~90M params
    "device": dict(n_layer=12, n_head=12, n_kv_head=4, n_embd=768, ffn_hidden=2048, max_seq_len=1024),
    # small autoregressive draft models (same tokenizer)
    "ar-tiny": dict(n_layer=1, n_head=4, n_kv_head=2, n_embd=64, ffn_hidden=192, max_seq_len=256),
    "ar-cpu": dict(n_layer=1, n_head=4, n_kv_head=2, n_embd=128, ffn_hidden=384, max_seq_len=512),
    "ar-device": dict(n_layer=2, n_head=8, n_kv_head=2, n_embd=256, ffn_hidden=704, max_seq_len=1024),
}


@dataclass
class TrainConfig:
    preset: str = "cpu"
    data: str = "training/work/tokens"
    out: str = "training/work/verifier.pt"
    batch_size: int = 16          # per process
    seq_len: int = 256
    max_steps: int = 100000
    minutes: float = 0.0          # wall-clock budget (0 = none)
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup: int = 50
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    fim_rate: float = 0.5         # fraction of documents turned into FIM examples
    spm_rate: float = 0.6         # of those, fraction in spm order (the engine's order)
    eval_every: int = 200
    eval_batches: int = 8
    seed: int = 0
    threads: int = 1              # CPU threads (ignored on GPU); 1 is fastest on a shared 2-core box
    compile: bool = False
    log_every: int = 20


def get_lr(cfg, progress):
    """progress in [0, 1]: linear warmup (in steps, see caller), then cosine to min_lr."""
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def evaluate(model, batcher, n, batch_size, device):
    model.eval()
    losses = []
    for _ in range(n):
        x, y = batcher.get(batch_size)
        _, loss = model(x.to(device), y.to(device))
        losses.append(loss.item())
    model.train()
    return sum(losses) / len(losses)


def train(cfg: TrainConfig, log=print):
    ddp = "RANK" in os.environ
    if ddp:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
    else:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed + rank)
    master = rank == 0

    stats = json.load(open(os.path.join(cfg.data, "stats.json")))
    vocab = stats.get("vocab_size")
    train_b = Batcher(TokenData(cfg.data, "train"), cfg.seq_len, cfg.fim_rate, cfg.spm_rate, seed=cfg.seed + rank)
    val_b = Batcher(TokenData(cfg.data, "val"), cfg.seq_len, cfg.fim_rate, cfg.spm_rate, seed=10_000)
    mcfg = GPTConfig(vocab_size=vocab, **PRESETS[cfg.preset])
    model = GPT(mcfg).to(device)
    if master:
        log(f"model {cfg.preset}: {model.num_params() / 1e6:.2f}M params, {mcfg}")
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95),
                            fused=device.startswith("cuda"))
    raw = model
    if cfg.compile:
        model = torch.compile(model)
    if ddp:
        model = torch.nn.parallel.DistributedDataParallel(model)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else torch.autocast("cpu", enabled=False)

    t0, tokens, step, history = time.time(), 0, 0, []
    budget = cfg.minutes * 60
    while step < cfg.max_steps:
        elapsed = time.time() - t0
        progress = max(step / cfg.max_steps, elapsed / budget if budget else 0.0)
        stop = torch.tensor([1.0 if progress >= 1.0 else 0.0])
        if ddp:
            stop = stop.to(device)
            dist.broadcast(stop, 0)
        if stop.item() > 0:
            break
        lr = cfg.lr * (step + 1) / cfg.warmup if step < cfg.warmup else get_lr(cfg, progress)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = train_b.get(cfg.batch_size)
        with amp:
            _, loss = model(x.to(device), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        tokens += x.numel() * world
        step += 1
        if master and step % cfg.log_every == 0:
            log(f"step {step} loss {loss.item():.3f} lr {lr:.2e} tok {tokens / 1e6:.2f}M "
                f"{tokens / (time.time() - t0):.0f} tok/s {time.time() - t0:.0f}s")
        if master and step % cfg.eval_every == 0:
            vl = evaluate(raw, val_b, cfg.eval_batches, cfg.batch_size, device)
            history.append({"step": step, "tokens": tokens, "val_loss": vl, "time_s": time.time() - t0})
            log(f"step {step} val_loss {vl:.4f}")
            save_checkpoint(cfg.out, raw, extra={"steps": step, "tokens": tokens, "val_loss": vl})
    result = {}
    if master:
        vl = evaluate(raw, val_b, cfg.eval_batches * 4, cfg.batch_size, device)
        result = {"steps": step, "tokens": tokens, "val_loss": vl, "train_time_s": time.time() - t0,
                  "params": raw.num_params(), "device": device, "world": world, "history": history,
                  "train_config": asdict(cfg)}
        log(f"done: {json.dumps({k: v for k, v in result.items() if k != 'history'})}")
        save_checkpoint(cfg.out, raw.cpu(), extra=result)
    if ddp:
        dist.destroy_process_group()
    return raw, result


def main():
    train(parse_config(TrainConfig))


if __name__ == "__main__":
    main()
