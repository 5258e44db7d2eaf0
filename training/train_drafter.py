"""
Train the DEER drafter on distillation data (training/distill.py).

Stage I  (continuation distillation): the whole block of k positions after the verified
         sequence (prompt + bonus token g0) is masked; cross-entropy against the verifier's
         greedy tokens g1..gk.
Stage II (scribe refinement): R ~ U(1, k); the first k - R block tokens are revealed as
         verified context and only the last R are masked; masked position i (1..R) weighs
         alpha^(R - i), so the positions nearest the prefix, which decide acceptance, count most.
With --hidden, the drafter also sees the verifier's hidden states of its context
(DFlash-style); the last context row (the pending bonus token) is zeros, as in the engine.
With --kv-context, the context enters each drafter layer as keys and values only (DFlash-style):
only the block positions run attention and MLP (the model card has its measured cost); with --anchor
too, the pending bonus token runs through the layers with the block (DFlash's block starts with it).
With --decay G, block position i weighs exp(-(i-1)/G) on top of the stage's weights (DFlash's loss decay).
With --suffix S, it also sees the first S tokens after the cursor (FIM drafting; distill.py's
`suf`, all <|endoftext|> for cuts in plain text); each batch truncates them to a random length
1..S, as the engine may send fewer.

    python -m training.train_drafter --verifier v.pt --distill d.npz --out drafter.pt --k 16
"""
import json
import os
import time
from dataclasses import dataclass, asdict

import numpy as np
import torch
import torch.nn.functional as F

from training.model import Drafter, DrafterConfig
from training.cli import parse_config
from training.export import load_checkpoint, save_checkpoint
from training.tokenizer import EOS, MASK
from training.schedule import lr_at, progress_of


@dataclass
class DrafterTrainConfig:
    verifier: str = "training/work/verifier.pt"
    distill: str = "training/work/distill.npz"
    out: str = "training/work/drafter.pt"
    init: str = ""                # continue from this drafter checkpoint (e.g. stage I -> II)
    k: int = 16                   # block size
    window: int = 64              # context window c (<= distill window)
    n_layer: int = 2
    hidden: bool = False          # condition on verifier hidden states
    taps: bool = False            # read every verifier block the distillation data has (distill --taps); else
                                  # only the top one, the final state (one distillation serves both in an A/B)
    suffix: int = 0               # > 0: also condition on this many tokens after the cursor
    head_tokens: int = 0          # > 0: score only the this many tokens the verifier writes most
    kv_context: bool = False      # the context enters each layer as keys/values only (cheaper pass)
    anchor: bool = False          # with kv_context: the pending bonus token is a query position too (DrafterConfig)
    fresh_layers: bool = False    # do not start the drafter's blocks from the verifier's first blocks
    stage: int = 1                # 1: full-block masking; 2: scribe refinement
    alpha: float = 1.01           # stage II position weight base
    decay: float = 0.0            # > 0: masked position i (1..R) also weighs exp(-(i-1)/decay) (DFlash's loss decay):
                                  # a small drafter's capacity goes to the first positions, which decide acceptance
    batch_size: int = 64
    max_steps: int = 100000
    minutes: float = 10.0
    lr: float = 2e-3
    min_lr: float = 2e-4
    warmup: int = 30
    val_frac: float = 0.05
    seed: int = 0
    eos_id: int = EOS             # targets after this token in a continuation are ignored: distill.py pads a
                                  # continuation with it once the text has ended (-1: none, for data without padding)
    threads: int = 0              # 0: all cores
    log_every: int = 20
    online: int = 0               # > 0: train on fresh continuations of the verifier (a buffer of this many samples,
                                  # refreshed while training: OnlineDistillData) instead of only the --distill file
    online_data: str = ""         # the token dir (training/data.py) whose rows the verifier continues
    online_reuse: float = 2.0     # draws per fresh sample, on average, before it is replaced
    online_initial: int = 0       # samples made before the first step (0 = fill the whole buffer first); the
                                  # buffer then grows by one chunk per refresh until full
    online_batch: int = 256       # continuations decoded together per refresh (x (1 + online_self_cuts) samples)
    online_row_len: int = 512     # as distill.py's --row-len, --cuts-per-row, --self-cuts (--self-span 32)
    online_cuts_per_row: int = 32
    online_self_cuts: int = 2
    online_forced: float = 0.0    # share of fresh chunks made by teacher forcing (distill.TeacherForcedSource: one
                                  # prefill per row, no decoding) rather than decoding; the held-out part is decoded
    online_forced_cuts: int = 128 # samples per teacher-forced row (about half of a 512-token row's cuts qualify)


class DistillData:
    def __init__(self, path, val_frac, top_only=False):
        """top_only: of data distilled with taps, keep only the top block's states (the final state)."""
        z = np.load(path)
        self.ctx, self.gen = z["ctx"], z["gen"]
        self.hid = z["hid"] if "hid" in z.files else None     # absent: distilled without hidden states
        self.suf = z["suf"] if "suf" in z.files else None
        self.taps = tuple(int(t) for t in z["taps"]) if "taps" in z.files else ()   # which verifier blocks hid is from
        if top_only and self.taps:
            self.hid = self.hid[..., -self.hid.shape[-1] // len(self.taps):]          # distill.py puts the top block last
            self.taps = ()
        self.W, self.K = int(z["window"]), int(z["K"])
        self.Lc = self.ctx.shape[1]
        n = len(self.ctx)
        n_val = max(1, int(n * val_frac))
        self.val_idx = np.arange(n - n_val, n)
        self.train_idx = np.arange(0, n - n_val)

    def batch(self, idx, k, R, c, hidden, device="cpu", suffix=0, mask_id=MASK, eos_id=-1):
        """-> input_ids (B, c+R), hidden (B, c, H) or None, targets (B, R), suffix_ids (B, suffix) or None.
        Targets after an eos_id in the continuation are -1 (ignored): once the verifier has ended the
        text nothing more is drafted, and the padding would only teach the drafter to repeat it."""
        seq = np.concatenate([self.ctx[idx], self.gen[idx]], 1)      # (B, Lc+K+1)
        e = self.Lc + 1 + (k - R)                                     # end of verified part
        ids = np.concatenate([seq[:, e - c:e], np.full((len(idx), R), mask_id)], 1)
        tgt = seq[:, e:e + R].copy()
        if eos_id >= 0:
            ended = np.cumsum(seq[:, self.Lc:] == eos_id, 1) > 0    # (B, K+1): at or after the first EOS
            tgt[ended[:, e - self.Lc - 1:e - self.Lc - 1 + R]] = -1
        h = None
        if hidden:
            assert self.hid is not None, "distillation data without hidden states (hid)"
            rows = np.arange(e - c, e) - self.Lc + self.W
            h = torch.from_numpy(self.hid[idx][:, rows].astype(np.float32))
            h[:, -1] = 0.0                                            # the pending bonus token
        h = h.to(device) if h is not None else None
        suf = None
        if suffix:
            assert self.suf is not None and suffix <= self.suf.shape[1], "distillation data without enough suffix tokens"
            suf = torch.from_numpy(self.suf[idx][:, :suffix]).long().to(device)
        return torch.from_numpy(ids).long().to(device), h, torch.from_numpy(tgt).long().to(device), suf


class OnlineDistillData(DistillData):
    """Distillation data that stays fresh: a buffer of `capacity` samples of the verifier's own
    continuations (training/distill.ContinuationSource), its held-out part made once from the held-out
    split, the rest replaced chunk by chunk while the drafter trains (refresh(): the oldest chunk's
    slots get a new chunk). A file-based drafter sees one distillation many times over and overfits
    it; this one sees each sample about `reuse` times (the caller refreshes after reuse x chunk draws).
    With `initial` < capacity, training starts once that many are made and refresh() appends until
    the buffer is full (on a GPU, filling 300k samples first took about 70 s of each stage)."""

    def __init__(self, source, val_source, capacity, val_frac=0.05, log=print, initial=0):
        first = source.next()
        self.source, self.chunk = source, len(first["ctx"])
        self.W, self.K, self.taps = source.window, source.K, ()
        self.Lc = first["ctx"].shape[1]
        n_val = max(1, int(capacity * val_frac))
        cap = max(capacity, n_val + self.chunk)
        self.ctx, self.gen, self.hid, self.suf, self.depth = (np.zeros((cap,) + first[k].shape[1:], first[k].dtype)
                                                              for k in ("ctx", "gen", "hid", "suf", "depth"))
        self.val_idx = np.arange(0, n_val)
        filled = 0
        while filled < n_val:
            filled += self._put(val_source.next(), filled, n_val)
        self.cursor, self.made = n_val, 0
        self._take(first)
        start = cap - n_val if initial <= 0 else min(cap - n_val, max(initial, self.chunk))
        while self.made < start:
            self.refresh()
        log(f"online distillation: a buffer of {cap} samples ({n_val} held out), {self.made} made before training, "
            f"{self.chunk} per refresh")

    @property
    def train_idx(self):
        """The training slots that hold a sample."""
        n_val = len(self.val_idx)
        return np.arange(n_val, n_val + min(self.made, len(self.ctx) - n_val))

    def _put(self, chunk, at, end):
        n = min(len(chunk["ctx"]), end - at)
        for k in ("ctx", "gen", "hid", "suf", "depth"):
            getattr(self, k)[at:at + n] = chunk[k][:n]
        return n

    def _take(self, chunk):
        n = self._put(chunk, self.cursor, len(self.ctx))
        self.made += n
        self.cursor += n
        if self.cursor == len(self.ctx):
            self.cursor = len(self.val_idx)

    def refresh(self):
        """One new chunk of continuations over the oldest training samples."""
        self._take(self.source.next())


def most_written(data, n, vocab, mask_id=MASK):
    """The n tokens the verifier writes most in the training continuations (ascending ids)."""
    counts = np.bincount(data.gen[data.train_idx].ravel(), minlength=vocab).astype(np.float64)
    counts[mask_id] = -1
    return torch.from_numpy(np.sort(np.argsort(-counts, kind="stable")[:n])).long()


def position_weights(R, stage, alpha, decay):
    """Loss weight of masked positions 1..R: stage II's alpha^(R-i), times exp(-(i-1)/decay) when decay > 0."""
    i = torch.arange(1, R + 1, dtype=torch.float32)
    w = torch.ones(R) if stage == 1 else alpha ** (R - i)
    return w * torch.exp(-(i - 1) / decay) if decay > 0 else w


def acceptance(logits, tgt):
    """Greedy acceptance of a block: mean over the batch of (longest correct prefix) and
    per-position accuracy. logits (B, k, V), tgt (B, k); an ignored target (-1, after the text
    ended) counts as not accepted, as nothing is drafted there."""
    ok = (logits.argmax(-1) == tgt).float()
    return ok.cumprod(1).sum(1).mean().item(), ok.mean(0).tolist()


@torch.no_grad()
def evaluate(model, data, cfg, k, n=512):
    model.eval()
    # spread over the whole held-out range: neighbouring samples are cuts of the same few rows (32 per row, and
    # their deeper cuts), so the first n alone came from about eight rows and read 3.9 for a drafter whose
    # simulated accepted length on held-in prompts was 1.4
    idx = data.val_idx[np.linspace(0, len(data.val_idx) - 1, min(n, len(data.val_idx))).astype(int)]
    dev = next(model.parameters()).device
    ids, h, tgt, suf = data.batch(idx, k, k, min(cfg.window, data.W), cfg.hidden, dev, cfg.suffix, model.cfg.mask_id,
                                  cfg.eos_id)
    logits = model(ids, h, k=k, suffix_ids=suf).float()
    if model.cfg.head_tokens:                   # the loss the head is trained on: targets outside it ignored
        sub = logits[..., model.head_ids]
        loss = F.cross_entropy(sub.reshape(-1, sub.size(-1)), model.head_targets(tgt).reshape(-1), ignore_index=-1).item()
    else:
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), tgt.reshape(-1), ignore_index=-1).item()
    acc_len, per_pos = acceptance(logits, tgt)
    model.train()
    return {"val_loss": loss, "accepted": acc_len, "tau_one_step": acc_len + 1, "per_position_acc": per_pos}


def drafter_config(cfg: DrafterTrainConfig, vocab_size, n_head, n_embd, ffn_hidden, mask_id=MASK, hidden_layers=(),
                   **extra):
    """The drafter's shape: the verifier's width, heads and MLP; block, window and conditioning from cfg;
    hidden_layers: the verifier blocks its hidden states come from (the distillation data's taps)."""
    return DrafterConfig(vocab_size=vocab_size, n_layer=cfg.n_layer, n_head=n_head, n_embd=n_embd,
                         ffn_hidden=ffn_hidden, block_size=cfg.k, context_window=cfg.window,
                         hidden_size=n_embd * max(1, len(hidden_layers)) if cfg.hidden else 0, mask_id=mask_id,
                         hidden_layers=tuple(hidden_layers) if cfg.hidden else (),
                         suffix_window=cfg.suffix, head_tokens=cfg.head_tokens,
                         kv_context=cfg.kv_context, anchor=cfg.anchor, **extra)


def train(cfg: DrafterTrainConfig, log=print, model: Drafter = None):
    """model: a drafter built by the caller (training/hf_drafter.py: for a verifier that is not a
    GPT checkpoint), trained as it is; else one from cfg.init or started from cfg.verifier."""
    torch.set_num_threads(cfg.threads or os.cpu_count())
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    if cfg.online:
        assert not cfg.taps, "online distillation reads the verifier's final state only"
        from training.distill import ContinuationSource, MixedSource, TeacherForcedSource
        teacher = load_checkpoint(cfg.verifier)[0].to(dev)

        def source(split, seed, forced=0.0):
            decoded = ContinuationSource(teacher, cfg.online_data, ctx_len=max(64, cfg.window), window=cfg.window,
                                         K=cfg.k, batch=cfg.online_batch, seed=seed, split=split,
                                         row_len=cfg.online_row_len, cuts_per_row=cfg.online_cuts_per_row,
                                         self_span=32 if cfg.online_self_cuts else 0, self_cuts=cfg.online_self_cuts)
            if forced <= 0:
                return decoded
            teacher_forced = TeacherForcedSource(teacher, cfg.online_data, ctx_len=max(64, cfg.window),
                                                 window=cfg.window, K=cfg.k,
                                                 batch=cfg.online_batch * (1 + cfg.online_self_cuts), seed=seed + 7,
                                                 split=split, row_len=cfg.online_row_len,
                                                 cuts_per_row=cfg.online_forced_cuts)
            return teacher_forced if forced >= 1 else MixedSource([(decoded, 1 - forced), (teacher_forced, forced)], seed)
        data = OnlineDistillData(source("train", cfg.seed + 1, cfg.online_forced), source("val", cfg.seed + 2),
                                 cfg.online, cfg.val_frac, log, initial=cfg.online_initial)
    else:
        data = DistillData(cfg.distill, cfg.val_frac, top_only=not cfg.taps)
    assert cfg.k <= data.K and cfg.window <= data.W
    if model is not None:
        model.train()
    elif cfg.init:
        model, _ = load_checkpoint(cfg.init)
        model.train()
    else:
        verifier, _ = load_checkpoint(cfg.verifier)
        v = verifier.cfg
        model = Drafter(drafter_config(cfg, v.vocab_size, v.n_head, v.n_embd, v.ffn_hidden, hidden_layers=data.taps))
        model.init_from_verifier(verifier, copy_layers=not cfg.fresh_layers)
        if cfg.head_tokens:
            model.head_ids.copy_(most_written(data, cfg.head_tokens, v.vocab_size))
    if cfg.hidden:
        assert tuple(model.cfg.hidden_layers) == data.taps, \
            f"{cfg.distill} has hidden states from blocks {data.taps or 'final'}, the drafter reads {model.cfg.hidden_layers}"
    model = model.to(dev)
    log(f"drafter: {model.num_params() / 1e6:.2f}M params, {model.cfg}, stage {cfg.stage}")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.01)
    t0, step, drawn = time.time(), 0, 0.0
    k = cfg.k
    if model.cfg.head_tokens:
        inside = np.isin(data.gen[data.val_idx][:, 1:], model.head_ids.cpu().numpy()).mean()
        log(f"head: {model.cfg.head_tokens} tokens cover {inside:.4f} of the held-out continuations")
    while step < cfg.max_steps:
        progress = progress_of(step=step, max_steps=cfg.max_steps, seconds=time.time() - t0, minutes=cfg.minutes)
        if progress >= 1:
            break
        lr = lr_at(step, progress, cfg.lr, cfg.min_lr, cfg.warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        R = k if cfg.stage == 1 else int(rng.integers(1, k + 1))
        c = cfg.window if rng.random() < 0.7 else int(rng.integers(4, cfg.window + 1))
        idx = rng.choice(data.train_idx, size=cfg.batch_size)
        s = int(rng.integers(1, cfg.suffix + 1)) if cfg.suffix else 0
        ids, h, tgt, suf = data.batch(idx, k, R, c, cfg.hidden, dev, s, model.cfg.mask_id, cfg.eos_id)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev == "cuda"):
            logits = model(ids, h, k=R, suffix_ids=suf, full=not model.cfg.head_tokens)  # (B, R, V or head)
        if model.cfg.head_tokens:
            tgt = model.head_targets(tgt)
        ce = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), tgt.reshape(-1), reduction="none",
                             ignore_index=-1)
        w = position_weights(R, cfg.stage, cfg.alpha, cfg.decay)
        w = w.to(dev)
        loss = (ce.view(-1, R) * w).sum() / (w.sum() * len(idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if cfg.online:
            drawn += len(idx)
            while drawn >= cfg.online_reuse * data.chunk:
                data.refresh()
                drawn -= cfg.online_reuse * data.chunk
        if step % cfg.log_every == 0:
            log(f"step {step} R {R} loss {loss.item():.3f} lr {lr:.2e} {time.time() - t0:.0f}s")
    ev = evaluate(model, data, cfg, k)
    result = {"steps": step, "train_time_s": time.time() - t0, "params": model.num_params(),
              "eval": ev, "train_config": asdict(cfg)}
    if cfg.online:
        result["online_samples"] = data.made
    log(f"done: {json.dumps(result)}")
    save_checkpoint(cfg.out, model.cpu(), extra=result)
    return model, result


def main():
    train(parse_config(DrafterTrainConfig))


if __name__ == "__main__":
    main()
