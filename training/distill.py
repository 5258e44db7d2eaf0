"""
Stage-I data for the DEER drafter: the verifier's own greedy continuations of corpus
prefixes cut at random points (continuation distillation), with the verifier's hidden
states so a drafter can also be conditioned on them.

For each sample:
  ctx  (Lc,)        the prompt: Lc tokens of a packed training row (plain or FIM), ending at a random cut
  gen  (K+1,)       greedy tokens g0..gK; g0 plays the engine's pending "bonus" token
  hid  (W+K, H)     fp16 verifier hidden states of the last W prompt tokens, then of g0..g(K-1)

    python -m training.distill --verifier v.pt --data training/work/tokens --out d.npz --n 20000
"""
import argparse
import time

import numpy as np
import torch

from training.data import TokenData, Batcher
from training.export import load_checkpoint
from training.tokenizer import EOS


@torch.no_grad()
def greedy_with_hidden(gpt, idx, n_new):
    """idx (B, T) -> tokens (B, n_new), prompt hidden (B, T, C), hidden of generated (B, n_new-1, C).
    After an EOS a row keeps emitting EOS."""
    B, T = idx.shape
    cfg = gpt.cfg
    dev = idx.device
    past = [(torch.zeros(B, cfg.n_kv_head, 0, cfg.head_dim, device=dev),) * 2 for _ in range(cfg.n_layer)]
    logits, past, h = gpt.forward_cached(idx, torch.ones(B, T, dtype=torch.long, device=dev),
                                         torch.arange(T, device=dev)[None].expand(B, T), past)
    prompt_h, gen_h, toks = h, [], []
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    nxt = logits[:, -1].argmax(-1)
    for t in range(n_new):
        nxt = torch.where(done, torch.full_like(nxt, EOS), nxt)
        done |= nxt == EOS
        toks.append(nxt)
        if t == n_new - 1:
            break
        logits, past, h = gpt.forward_cached(nxt[:, None], torch.ones(B, T + t + 1, dtype=torch.long, device=dev),
                                             torch.full((B, 1), T + t, dtype=torch.long, device=dev), past)
        gen_h.append(h[:, 0])
        nxt = logits[:, -1].argmax(-1)
    return torch.stack(toks, 1), prompt_h, torch.stack(gen_h, 1)


def make(verifier_path, data_dir, out, n, ctx_len=128, window=64, K=32, batch=64, seed=0,
         split="train", minutes=0.0, log=print):
    gpt, _ = load_checkpoint(verifier_path)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    gpt = gpt.to(dev)
    b = Batcher(TokenData(data_dir, split), seq_len=max(ctx_len * 2, 256), seed=seed)
    rng = np.random.default_rng(seed)
    ctxs, gens, hids = [], [], []
    t0 = time.time()
    while len(ctxs) * batch < n:
        rows = []
        for _ in range(batch):
            r = b.row()
            cut = int(rng.integers(ctx_len, len(r) + 1))
            rows.append(r[cut - ctx_len:cut])
        idx = torch.tensor(rows, dtype=torch.long, device=dev)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev == "cuda"):
            toks, ph, gh = greedy_with_hidden(gpt, idx, K + 1)
        ctxs.append(idx.cpu().numpy().astype(np.int32))
        gens.append(toks.cpu().numpy().astype(np.int32))
        hids.append(torch.cat([ph[:, -window:], gh], 1).float().half().cpu().numpy())
        if len(ctxs) % 10 == 0:
            log(f"distill {len(ctxs) * batch}/{n} {time.time() - t0:.0f}s")
        if minutes and time.time() - t0 > minutes * 60:
            break
    np.savez(out, ctx=np.concatenate(ctxs), gen=np.concatenate(gens), hid=np.concatenate(hids),
             window=window, K=K)
    log(f"distill: {sum(len(c) for c in ctxs)} samples in {time.time() - t0:.0f}s -> {out}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--verifier", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--ctx-len", type=int, default=128)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--K", type=int, default=32)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", default="train")
    ap.add_argument("--minutes", type=float, default=0.0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    make(args.verifier, args.data, args.out, args.n, args.ctx_len, args.window, args.K, args.batch,
         args.seed, args.split, args.minutes)


if __name__ == "__main__":
    main()
