"""
Train the verifier (or the small `ar` draft model): next-token prediction on plain
documents and fill-in-the-middle examples (psm and spm), see training/data.py.

Single process:   python -m training.train --preset cpu --data training/work/tokens --out v.pt
Several GPUs:     torchrun --nproc_per_node=8 -m training.train --preset device ...
Resume:           the same command with --resume (continues from OUT.state: weights,
                  optimizer, step, tokens, data stream, history).

Budgets: --total-tokens fixes the learning-rate schedule over the whole run, which may span
several invocations (sessions), and --minutes then bounds one invocation (it saves its state
and stops). Without --total-tokens the schedule follows --minutes (cumulative training time,
across resumes) or --max-steps, whichever ends first. A run resumed with a larger budget
re-stretches its cosine (the learning rate rises again, then decays to the new end).
A resumable state is written every --ckpt-minutes; OUT itself (weights only) is what later
stages read.
"""
import json
import os
import platform
import time
from dataclasses import dataclass, asdict

import torch
import torch.distributed as dist

from training.model import GPT, GPTConfig
from training.data import TokenData, Batcher
from training.cli import parse_config
from training.export import save_checkpoint, RUN_RECORD, training_record
from training.schedule import lr_at, progress_of

# model presets: (GPTConfig kwargs). vocab_size is taken from the tokenizer stats at run time.
PRESETS = {
    # the committed test fixture and CI smoke runs
    "tiny": dict(n_layer=2, n_head=4, n_kv_head=2, n_embd=64, ffn_hidden=192, max_seq_len=256),
    # the first CPU default (3.4M params, 2.1M of them the tied embedding at vocab 16384)
    "cpu": dict(n_layer=6, n_head=4, n_kv_head=2, n_embd=128, ffn_hidden=384, max_seq_len=512),
    # candidates for the CPU default, compared by validation loss at equal CPU time (training/sweep.py)
    "cpu-s": dict(n_layer=6, n_head=6, n_kv_head=2, n_embd=192, ffn_hidden=512, max_seq_len=2048),
    "cpu-m": dict(n_layer=6, n_head=4, n_kv_head=2, n_embd=256, ffn_hidden=704, max_seq_len=2048),
    "cpu-l": dict(n_layer=8, n_head=6, n_kv_head=2, n_embd=384, ffn_hidden=1024, max_seq_len=2048),
    # one device call (~3 min of training on an H100/H200), sized to ship: 12.5M params at vocab 8192
    # (int8 ONNX + bf16 safetensors ~38 MB, under the repository's size budget)
    "device": dict(n_layer=6, n_head=6, n_kv_head=2, n_embd=384, ffn_hidden=1024, max_seq_len=2048),
    # ~90M params: what a GPU call can train, too big to ship in the repository
    "device-xl": dict(n_layer=12, n_head=12, n_kv_head=4, n_embd=768, ffn_hidden=2048, max_seq_len=2048),
    # small autoregressive draft models (same tokenizer)
    "ar-tiny": dict(n_layer=1, n_head=4, n_kv_head=2, n_embd=64, ffn_hidden=192, max_seq_len=256),
    "ar-cpu": dict(n_layer=1, n_head=4, n_kv_head=2, n_embd=128, ffn_hidden=384, max_seq_len=2048),
    "ar-device": dict(n_layer=2, n_head=8, n_kv_head=2, n_embd=256, ffn_hidden=704, max_seq_len=2048),
}


@dataclass
class TrainConfig:
    preset: str = "cpu"
    data: str = "training/work/tokens"
    out: str = "training/work/verifier.pt"
    batch_size: int = 16          # per process
    seq_len: int = 256
    long_seq_len: int = 0         # > 0: switch to this sequence length (same tokens per step) ...
    long_from: float = 0.8        # ... once this fraction of the run is spent
    max_steps: int = 0            # 0 = none
    total_tokens: int = 0         # the schedule's whole run, across resumes (0 = follow the other budgets)
    minutes: float = 0.0          # wall-clock budget of this invocation (0 = none)
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
    threads: int = 0              # CPU threads (0 = all cores); ignored on GPU
    dtype: str = "auto"           # CPU autocast: bf16 | fp32 | auto (bf16 only with AMX / AVX512-BF16)
    compile: bool = False
    ckpt_minutes: float = 4.0     # resumable state every this many minutes
    resume: bool = False
    distill: str = ""             # train on a distillation file instead (training/distill.py): next-token
                                  # loss on the verifier's greedy continuations only (the `ar` drafter)
    init: str = ""                # start from these weights: a model folder (config.json + model.safetensors) or a .pt
    log_every: int = 20


class DistillBatcher:
    """Rows [prompt, greedy continuation] of a distillation file; targets only on the continuation."""

    def __init__(self, path, seed, val=False, val_frac=0.05):
        import numpy as np
        z = np.load(path)
        seq = np.concatenate([z["ctx"], z["gen"]], 1).astype(np.int64)
        n_val = max(1, int(len(seq) * val_frac))
        self.seq = seq[-n_val:] if val else seq[:-n_val]
        self.Lc = z["ctx"].shape[1]
        self.rng = np.random.default_rng(seed)
        self.T = seq.shape[1] - 1

    def get(self, batch_size):
        rows = torch.from_numpy(self.seq[self.rng.integers(0, len(self.seq), size=batch_size)])
        x, y = rows[:, :-1], rows[:, 1:].clone()
        y[:, :self.Lc - 1] = -1
        return x, y


class Prefetcher:
    """A Batcher whose next batches are built on a thread while the GPU runs the step (Batcher is
    Python, per row). The same interface: set T, then get(n); a batch built for another (T, n) is dropped."""

    def __init__(self, batcher, depth=6):
        import queue
        import threading
        self.b, self.q, self.T = batcher, queue.Queue(depth), batcher.T
        self.rng = batcher.rng                    # what save_state records (the thread runs a few batches ahead)
        self.want, self.asked = None, threading.Event()
        threading.Thread(target=self._fill, daemon=True).start()

    def _fill(self):
        self.asked.wait()
        while True:
            want = self.want
            self.b.T = want[0]
            self.q.put((want, self.b.get(want[1])))

    def get(self, batch_size):
        self.want = want = (self.T, batch_size)
        self.asked.set()
        while True:
            got, batch = self.q.get()
            if got == want:
                return batch


def cpu_has_fast_bf16():
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def uses_bf16(device, dtype):
    return device.startswith("cuda") or dtype == "bf16" or (dtype == "auto" and cpu_has_fast_bf16())


def autocast_for(device, dtype):
    return torch.autocast("cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16,
                          enabled=uses_bf16(device, dtype))


@torch.no_grad()
def evaluate(model, batcher, n, batch_size, device, amp):
    model.eval()
    losses = []
    for _ in range(n):
        x, y = batcher.get(batch_size)
        with amp:
            _, loss = model(x.to(device), y.to(device))
        losses.append(loss.item())
    model.train()
    return sum(losses) / len(losses)


def state_path(cfg):
    return cfg.out + ".state"


def save_state(cfg, raw, opt, batcher, run):
    tmp = state_path(cfg) + ".tmp"
    torch.save({"model": raw.state_dict(), "config": asdict(raw.cfg), "opt": opt.state_dict(),
                "rng": batcher.rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "run": run,
                "train_config": asdict(cfg)}, tmp)
    os.replace(tmp, state_path(cfg))  # a crash mid-write never leaves a broken state


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
        torch.set_num_threads(cfg.threads or os.cpu_count())
    torch.manual_seed(cfg.seed + rank)
    master = rank == 0

    stats = json.load(open(os.path.join(cfg.data, "stats.json")))
    vocab = stats.get("vocab_size")
    if cfg.distill:
        train_b = DistillBatcher(cfg.distill, seed=cfg.seed + rank)
        val_b = DistillBatcher(cfg.distill, seed=10_000, val=True)
        cfg.seq_len, cfg.long_seq_len = train_b.T, 0
    else:
        train_b = Batcher(TokenData(cfg.data, "train"), cfg.seq_len, cfg.fim_rate, cfg.spm_rate, seed=cfg.seed + rank)
        val_b = Batcher(TokenData(cfg.data, "val"), cfg.seq_len, cfg.fim_rate, cfg.spm_rate, seed=10_000)
    mcfg = GPTConfig(vocab_size=vocab, **PRESETS[cfg.preset])
    model = GPT(mcfg).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95),
                            fused=device.startswith("cuda"))
    run = {"step": 0, "tokens": 0, "train_time_s": 0.0, "history": [], "sessions": []}
    if cfg.init and not (cfg.resume and os.path.exists(state_path(cfg))):
        # what the weights were trained on before: a model folder's run record, a checkpoint's own result
        if os.path.isdir(cfg.init):
            from training.hf import load_verifier
            start = load_verifier(cfg.init)
            record = os.path.join(cfg.init, RUN_RECORD)
            prior = json.load(open(record)) if os.path.exists(record) else None
        else:
            from training.export import load_checkpoint
            start, extra = load_checkpoint(cfg.init)
            prior = training_record(extra) if "tokens" in extra else None
        assert asdict(start.cfg) == asdict(mcfg), f"{cfg.init} is a {start.cfg} model, not preset {cfg.preset}"
        model.load_state_dict(start.state_dict())
        if prior:
            run["prior"] = prior
        if master:
            log(f"weights from {cfg.init}" + (f" (trained on {prior['tokens'] / 1e6:.2f}M tokens before)" if prior else ""))
    if cfg.resume and os.path.exists(state_path(cfg)):
        st = torch.load(state_path(cfg), map_location=device, weights_only=False)
        assert st["config"] == asdict(mcfg), f"{state_path(cfg)} is a {st['config']} model, not preset {cfg.preset}"
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        train_b.rng.bit_generator.state = st["rng"]
        torch.set_rng_state(st["torch_rng"])
        run = st["run"]
        if master:
            log(f"resumed from {state_path(cfg)}: step {run['step']}, {run['tokens'] / 1e6:.2f}M tokens")
    elif cfg.resume and master:
        log(f"--resume: no {state_path(cfg)} yet, starting fresh")
    if device.startswith("cuda") and isinstance(train_b, Batcher):
        train_b = Prefetcher(train_b)
    if master:
        log(f"model {cfg.preset}: {model.num_params() / 1e6:.2f}M params, {mcfg}")
    raw = model
    if cfg.compile:
        model = torch.compile(model)
    if ddp:
        model = torch.nn.parallel.DistributedDataParallel(model)
    amp = autocast_for(device, cfg.dtype)
    session = {"start_step": run["step"], "start_tokens": run["tokens"], "device": device,
               "threads": torch.get_num_threads(), "bf16": uses_bf16(device, cfg.dtype),
               "cpu": platform.processor() or platform.machine()}

    t0 = time.time()
    t_ckpt = t0
    tokens_per_step = cfg.batch_size * cfg.seq_len * world
    while True:
        elapsed = time.time() - t0
        progress = progress_of(run["step"], cfg.max_steps, run["tokens"], cfg.total_tokens,
                               run["train_time_s"] + elapsed if not cfg.total_tokens else 0.0,
                               cfg.minutes if not cfg.total_tokens else 0.0)
        session_over = bool(cfg.total_tokens and cfg.minutes and elapsed >= cfg.minutes * 60)
        stop = progress >= 1.0 or session_over
        stop = torch.tensor([1.0 if stop else 0.0])
        if ddp:
            stop = stop.to(device)
            dist.broadcast(stop, 0)
        if stop.item() > 0:
            break
        lr = lr_at(run["step"], progress, cfg.lr, cfg.min_lr, cfg.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        long = cfg.long_seq_len and progress >= cfg.long_from
        T = cfg.long_seq_len if long else cfg.seq_len
        train_b.T = T
        x, y = train_b.get(max(1, tokens_per_step // (T * world)))
        with amp:
            _, loss = model(x.to(device), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        run["tokens"] += x.numel() * world
        run["step"] += 1
        step = run["step"]
        now = time.time()
        if master and step % cfg.log_every == 0:
            done = run["tokens"] - session["start_tokens"]
            log(f"step {step} loss {loss.item():.3f} lr {lr:.2e} T {T} tok {run['tokens'] / 1e6:.2f}M "
                f"{done / (now - t0):.0f} tok/s {now - t0:.0f}s")
        if master and step % cfg.eval_every == 0:
            vl = evaluate(raw, val_b, cfg.eval_batches, max(1, tokens_per_step // cfg.seq_len), device, amp)
            run["history"].append({"step": step, "tokens": run["tokens"], "val_loss": vl,
                                   "time_s": run["train_time_s"] + now - t0})
            log(f"step {step} val_loss {vl:.4f}")
        if master and cfg.ckpt_minutes and now - t_ckpt >= cfg.ckpt_minutes * 60:
            run_now = dict(run, train_time_s=run["train_time_s"] + now - t0)
            save_state(cfg, raw, opt, train_b, run_now)
            save_checkpoint(cfg.out, raw, extra={"steps": step, "tokens": run["tokens"], "partial": True})
            t_ckpt = now
    result = {}
    if master:
        elapsed = time.time() - t0
        session.update(end_step=run["step"], end_tokens=run["tokens"], seconds=elapsed,
                       tokens_per_s=(run["tokens"] - session["start_tokens"]) / max(elapsed, 1e-9))
        run["sessions"].append(session)
        run["train_time_s"] += elapsed
        save_state(cfg, raw, opt, train_b, run)
        val_b.T = cfg.long_seq_len or cfg.seq_len
        vl = evaluate(raw, val_b, cfg.eval_batches * 4, max(1, tokens_per_step // val_b.T), device, amp)
        result = {"steps": run["step"], "tokens": run["tokens"], "val_loss": vl, "val_seq_len": val_b.T,
                  "train_time_s": run["train_time_s"], "params": raw.num_params(),
                  "tokens_per_s_last_session": session["tokens_per_s"], "device": device, "world": world,
                  "finished": progress >= 1.0,
                  "history": run["history"], "sessions": run["sessions"], "train_config": asdict(cfg)}
        if run.get("prior"):
            result["cumulative"] = cumulative(run["prior"], run)
        log(f"done: {json.dumps({k: v for k, v in result.items() if k not in ('history', 'sessions')})}")
        save_checkpoint(cfg.out, raw.cpu(), extra=result)
    if ddp:
        dist.destroy_process_group()
    return raw, result


def cumulative(prior, run):
    """This run's counts on top of what the --init weights had seen (the schedule itself restarts)."""
    def shifted(s):
        return dict(s, start_step=s["start_step"] + prior["steps"], end_step=s["end_step"] + prior["steps"],
                    start_tokens=s["start_tokens"] + prior["tokens"], end_tokens=s["end_tokens"] + prior["tokens"])
    return {"steps": prior["steps"] + run["step"], "tokens": prior["tokens"] + run["tokens"],
            "train_time_s": prior["train_time_s"] + run["train_time_s"],
            "sessions": prior.get("sessions", []) + [shifted(s) for s in run["sessions"]]}


def main():
    train(parse_config(TrainConfig))


if __name__ == "__main__":
    main()
