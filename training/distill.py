"""
Stage-I data for the DEER drafter: the verifier's own greedy continuations of corpus
prefixes cut at random points (continuation distillation), with the verifier's hidden
states so a drafter can also be conditioned on them.

For each sample:
  ctx  (Lc,)        the prompt: Lc tokens of a packed training row (plain or FIM), ending at a random cut,
                    then, for a cut inside a continuation (--self-cuts), the verifier's own greedy
                    tokens up to that point: in the engine every block after the first is drafted
                    after text the verifier wrote (repetitions included), so the drafter learns that too
  gen  (K+1,)       greedy tokens g0..gK; g0 plays the engine's pending "bonus" token
  hid  (W+K, H)     fp16 verifier hidden states of the last W prompt tokens, then of g0..g(K-1)
  depth ()          how many of the verifier's own tokens end ctx (0: a cut in the corpus row itself)
  suf  (S,)         when the cut falls in the middle of a FIM example: the first S tokens of its
                    suffix (the text after the cursor), <|endoftext|> after its end; all
                    <|endoftext|> for a cut in plain text (for drafters that see the suffix)

    python -m training.distill --verifier v.pt --data training/work/tokens --out d.npz --n 20000
"""
import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from training.data import TokenData, Batcher
from training.export import load_checkpoint
from training.model import apply_rope, rope_cos_sin
from training.tokenizer import EOS, FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX

SUFFIX_STORED = 32


@torch.no_grad()
def greedy_with_hidden(gpt, idx, n_new, taps=()):
    """idx (B, T) -> tokens (B, n_new), prompt hidden (B, T, C), hidden of generated (B, n_new-1, C).
    After an EOS a row keeps emitting EOS. (One cut at the end of each row.) taps: GPT.features."""
    B, T = idx.shape
    toks, hid = greedy_from_cuts(gpt, idx, torch.full((B, 1), T, device=idx.device), n_new, T, taps)
    return toks, hid[:, :T], hid[:, T:]


def suffix_of_cut(row, cut, n=SUFFIX_STORED):
    """The first n suffix tokens of the FIM middle that row[:cut] ends in, padded with EOS (all EOS
    when the cut is not inside a middle: plain text, or a FIM example whose header the row cut off).
    psm rows are <fim_prefix> P <fim_suffix> S <fim_middle> M, spm rows <fim_suffix> S <fim_prefix> P <fim_middle> M."""
    def back_to(i, marker):
        while i >= 0 and row[i] != EOS and row[i] != marker:
            i -= 1
        return i if i >= 0 and row[i] == marker else -1
    mid = back_to(cut - 1, FIM_MIDDLE)
    suf = back_to(mid - 1, FIM_SUFFIX) if mid > 0 else -1
    seg = []
    if suf >= 0:
        for t in row[suf + 1:mid]:
            if t == FIM_PREFIX or len(seg) == n:
                break
            seg.append(int(t))
    return seg + [EOS] * (n - len(seg))


def in_middle(row):
    """m[c] is True when a cut at c (context row[:c]) falls inside a FIM example's middle."""
    m, inside = [False], False
    for t in row:
        inside = (inside or t == FIM_MIDDLE) and t != EOS
        m.append(inside)
    return np.array(m)


def choose_cuts(row, ctx_len, m, middle_share, rng, allowed=None):
    """m distinct cut points in [ctx_len, len(row)]; about middle_share of them inside FIM middles
    when the row has any (completions in an editor are mostly fill-in-the-middle).
    allowed: a boolean mask over cut points 0..len(row); only those are drawn (at least one must be True)."""
    pos = np.arange(ctx_len, len(row) + 1)
    if allowed is not None:
        pos = pos[allowed[pos]]
    mid = in_middle(row)[pos]
    w = np.ones(len(pos))
    if middle_share and 0 < mid.sum() < len(pos):
        w[mid] = middle_share / mid.sum()
        w[~mid] = (1 - middle_share) / (~mid).sum()
    return rng.choice(pos, size=m, replace=m > len(pos), p=w / w.sum())


class ContinuationSource:
    """The verifier's greedy continuations of token rows, batch by batch (what `make` writes, and what
    train_drafter's online distillation draws fresh samples from). next() -> dict of arrays:
    ctx (B, ctx_len), gen (B, K+1), hid (B, W+K, C) fp16, suf (B, SUFFIX_STORED), depth (B,)."""

    def __init__(self, gpt, data_dir, ctx_len=128, window=64, K=32, batch=64, seed=0, split="train", row_len=0,
                 cuts_per_row=1, middle_share=0.5, self_span=0, self_cuts=0, taps=()):
        assert not taps or list(taps) == sorted(set(taps)) and taps[-1] == gpt.cfg.n_layer, \
            f"taps {taps}: distinct blocks in ascending order, the last one {gpt.cfg.n_layer} (the final state)"
        self.dev = next(gpt.parameters()).device.type
        self.gpt, self.ctx_len, self.window, self.K, self.taps = gpt, ctx_len, window, K, tuple(taps)
        self.row_len = max(row_len, ctx_len)
        self.b = Batcher(TokenData(data_dir, split), seq_len=max(self.row_len, 256), seed=seed)
        self.rng = np.random.default_rng(seed)
        self.cuts_per_row, self.middle_share = cuts_per_row, middle_share
        self.rows_per_batch = max(1, batch // cuts_per_row)
        self.span = self_span if self_cuts else 0             # extra tokens decoded per continuation
        self.deeper = self_cuts if self.span else 0           # samples cut inside each continuation

    def next(self):
        dev, ctx_len, window, K, span, rng = self.dev, self.ctx_len, self.window, self.K, self.span, self.rng
        rows = torch.tensor([self.b.row()[:self.row_len] for _ in range(self.rows_per_batch)], dtype=torch.long, device=dev)
        cuts = np.stack([choose_cuts(r, ctx_len, self.cuts_per_row, self.middle_share, rng) for r in rows.tolist()])
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev == "cuda"):
            toks, hid_rows = greedy_from_cuts(self.gpt, rows, torch.as_tensor(cuts, device=dev), K + 1 + span, window,
                                              self.taps)
        r_idx = np.repeat(np.arange(self.rows_per_batch), self.cuts_per_row)
        c_flat = cuts.reshape(-1)
        rows_np = rows.cpu().numpy()
        toks_np = toks.cpu().numpy().astype(np.int32)                             # (B, K+1+span)
        hid_np = hid_rows.float().half().cpu().numpy()                            # (B, W+K+span, C)
        suf = np.array([suffix_of_cut(rows_np[r], c) for r, c in zip(r_idx, c_flat)], dtype=np.int32)
        first_eos = np.where((toks_np == EOS).any(1), (toks_np == EOS).argmax(1), toks_np.shape[1])
        parts = {"ctx": [], "gen": [], "hid": [], "suf": [], "depth": []}
        for s in range(1 + self.deeper):
            off = np.zeros(len(c_flat), dtype=np.int64) if s == 0 else \
                np.minimum(rng.integers(1, span + 1, size=len(c_flat)), first_eos)
            parts["ctx"].append(np.stack([np.concatenate([rows_np[r, c - ctx_len:c], toks_np[j, :o]])[-ctx_len:]
                                          for j, (r, c, o) in enumerate(zip(r_idx, c_flat, off))]).astype(np.int32))
            parts["gen"].append(np.stack([toks_np[j, o:o + K + 1] for j, o in enumerate(off)]))
            parts["hid"].append(np.stack([hid_np[j, o:o + window + K] for j, o in enumerate(off)]))
            parts["suf"].append(suf)
            parts["depth"].append(off.astype(np.int32))
        return {k: np.concatenate(v) for k, v in parts.items()}


class TeacherForcedSource:
    """Samples in ContinuationSource's format from one teacher-forced pass of the verifier over corpus
    rows, no decoding: wherever the verifier's argmax agrees with the row, the row *is* its greedy
    continuation. For a cut c (context row[:c]) the bonus g0 is the argmax after row[:c]; g_j (j >= 1) is
    known while the row agreed with g_0..g_(j-1), and from the first unknown one gen holds <|endoftext|>,
    which train_drafter ignores as a target (as after a continuation's end). Greedy acceptance reaches
    position j only when positions 1..j-1 were right, so every target that could count is here.
    Cuts are drawn only where g1 is known. A pass costs one prefill per row: many times cheaper per
    sample than decoding, which makes this a source of fresh samples a CPU can keep up with.
    The contexts are corpus text (the engine's first block), never the verifier's own continuations
    (every later block): mix with ContinuationSource (MixedSource) for those."""

    def __init__(self, gpt, data_dir, ctx_len=128, window=64, K=32, batch=64, seed=0, split="train", row_len=0,
                 cuts_per_row=32, middle_share=0.5):
        self.dev = next(gpt.parameters()).device.type
        self.gpt, self.ctx_len, self.window, self.K = gpt, ctx_len, window, K
        self.row_len = max(row_len, ctx_len + K + 2)
        self.b = Batcher(TokenData(data_dir, split), seq_len=max(self.row_len, 256), seed=seed)
        self.rng = np.random.default_rng(seed)
        self.cuts_per_row, self.middle_share = cuts_per_row, middle_share
        self.rows_per_batch = max(1, batch // cuts_per_row)

    @torch.no_grad()
    def next(self):
        dev, W, K, Lc = self.dev, self.window, self.K, self.ctx_len
        rows_np = np.array([self.b.row()[:self.row_len] for _ in range(self.rows_per_batch)], dtype=np.int64)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev == "cuda"):
            logits, _, hid = self.gpt(torch.from_numpy(rows_np).to(dev), return_hidden=True)
        argmax = logits.argmax(-1).cpu().numpy()                                  # (R, L): argmax after row[:p+1]
        hid_np = hid.float().half().cpu().numpy()
        L = rows_np.shape[1]
        parts = {"ctx": [], "gen": [], "hid": [], "suf": [], "depth": []}
        for r, row in enumerate(rows_np):
            agree = np.append(argmax[r, :-1] == row[1:], False)                   # agree[p]: row[p+1] is the argmax
            allowed = np.zeros(L + 1, dtype=bool)
            allowed[Lc:L - K] = agree[Lc - 1:L - K - 1]                           # cut c: g1 known, g0..gK inside the row
            if not allowed.any():
                continue
            for c in choose_cuts(row, Lc, self.cuts_per_row, self.middle_share, self.rng, allowed):
                gen = argmax[r, c - 1:c + K].copy()                               # g0..gK
                known = 1 + int(np.cumprod(agree[c - 1:c + K - 1]).sum())         # g0..g(known-1) are the greedy tokens
                gen[known:] = EOS
                parts["ctx"].append(row[c - Lc:c])
                parts["gen"].append(gen)
                parts["hid"].append(hid_np[r, c - W:c + K])
                parts["suf"].append(suffix_of_cut(row, c))
                parts["depth"].append(0)
        return {"ctx": np.array(parts["ctx"], dtype=np.int32), "gen": np.array(parts["gen"], dtype=np.int32),
                "hid": np.array(parts["hid"]), "suf": np.array(parts["suf"], dtype=np.int32),
                "depth": np.array(parts["depth"], dtype=np.int32)}


class MixedSource:
    """Chunks from several sources, each drawn with its share: [(source, share), ...]."""

    def __init__(self, weighted, seed=0):
        self.sources = [s for s, _ in weighted]
        shares = np.array([w for _, w in weighted], dtype=np.float64)
        self.p = shares / shares.sum()
        self.window, self.K = self.sources[0].window, self.sources[0].K
        self.rng = np.random.default_rng(seed)

    def next(self):
        return self.sources[int(self.rng.choice(len(self.sources), p=self.p))].next()


def make(verifier_path, data_dir, out, n, ctx_len=128, window=64, K=32, batch=64, seed=0,
         split="train", minutes=0.0, row_len=0, cuts_per_row=1, threads=0, middle_share=0.5,
         self_span=0, self_cuts=0, taps=(), log=print):
    """n samples of (ctx, gen, hid). With cuts_per_row > 1, one prefill of a row of row_len tokens
    serves that many cut points (the verifier's KV cache up to a cut is the row's prefix, so each
    continuation sees up to row_len tokens of context for a fraction of the cost); batch counts
    continuations decoded together. About middle_share of the cuts fall inside FIM middles.
    With self_cuts > 0, each continuation runs self_span tokens longer and gives self_cuts more
    samples, cut 1..self_span tokens into it (never past its first EOS). taps: the verifier blocks
    whose outputs make the hidden states (GPT.features; () = the final state)."""
    if threads:
        torch.set_num_threads(threads)
    gpt, _ = load_checkpoint(verifier_path)
    gpt = gpt.to("cuda" if torch.cuda.is_available() else "cpu")
    source = ContinuationSource(gpt, data_dir, ctx_len, window, K, batch, seed, split, row_len, cuts_per_row,
                                middle_share, self_span, self_cuts, taps)
    chunks = []
    t0, made = time.time(), 0
    while made < n:
        chunks.append(source.next())
        made += len(chunks[-1]["ctx"])
        if len(chunks) % 10 == 0:
            log(f"distill {made}/{n} {time.time() - t0:.0f}s")
        if minutes and time.time() - t0 > minutes * 60:
            break
    cat = {k: np.concatenate([c[k] for c in chunks])[:n] for k in chunks[0]}
    np.savez(out, **cat, window=window, K=K, taps=np.array(list(taps), dtype=np.int32))
    log(f"distill: {min(made, n)} samples in {time.time() - t0:.0f}s -> {out}")


@torch.no_grad()
def greedy_from_cuts(gpt, rows, cuts, n_new, window, taps=()):
    """rows (R, L) token rows; cuts (R, m) cut points. One prefill per row, then greedy decoding of
    every (row, cut) continuation at once, each attending only to its row's first `cut` tokens.
    Returns tokens (R*m, n_new) and hidden rows (R*m, window + n_new - 1, C): the verifier's hidden
    states of the `window` tokens before the cut, then of the generated g0..g(n_new-2) (with taps,
    GPT.features: C * len(taps) wide).
    After an EOS a continuation keeps emitting EOS.

    The rows' keys and values are computed once and shared by their cuts (never copied per
    continuation); the generated tokens' keys and values go into buffers allocated once, so a
    decoding step costs one token's matmuls per continuation and no cache copy."""
    cfg = gpt.cfg
    R, L = rows.shape
    m = cuts.shape[1]
    B = R * m
    nkv, hs = cfg.n_kv_head, cfg.head_dim
    rep = cfg.n_head // nkv
    dev = rows.device
    scale = 1.0 / math.sqrt(hs)

    def qkv(blk, x, cos, sin):
        a, (b_, t_, _) = blk.self_attn, x.shape
        hN = blk.input_layernorm(x)
        q = a.q_proj(hN).view(b_, t_, cfg.n_head, hs).transpose(1, 2)
        k = a.k_proj(hN).view(b_, t_, nkv, hs).transpose(1, 2)
        v = a.v_proj(hN).view(b_, t_, nkv, hs).transpose(1, 2)
        return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v

    def finish(blk, x, y):                                                     # y (b, T, C) attention output
        x = x + blk.self_attn.o_proj(y)
        return x + blk.mlp(blk.post_attention_layernorm(x))

    cos, sin = rope_cos_sin(torch.arange(L, device=dev)[None], hs, cfg.rope_theta)
    x = gpt.embed_tokens(rows)
    row_k, row_v, outputs = [], [], []                                         # per layer (R, nkv, L, hs)
    for blk in gpt.layers:
        q, k, v = qkv(blk, x, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=rep > 1)
        x = finish(blk, x, y.transpose(1, 2).reshape(R, L, -1))
        row_k.append(k)
        row_v.append(v)
        outputs.append(x)
    h = gpt.norm(x)
    feats = gpt.features(outputs, h, taps)
    c = cuts.reshape(-1).long()                                                # (B,)
    r_idx = torch.arange(R, device=dev).repeat_interleave(m)
    prompt_h = feats[r_idx[:, None], c[:, None] - window + torch.arange(window, device=dev)[None]]  # (B, W, C)
    del outputs, feats
    nxt = gpt.lm_head(h[r_idx, c - 1]).argmax(-1)
    row_visible = (torch.arange(L, device=dev)[None] < c[:, None]).view(R, 1, m, 1, 1, L)
    gen_k = [torch.empty(B, nkv, n_new, hs, dtype=x.dtype, device=dev) for _ in gpt.layers]
    gen_v = [torch.empty_like(t) for t in gen_k]
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    toks, gen_h = [], []
    for t in range(n_new):
        nxt = torch.where(done, torch.full_like(nxt, EOS), nxt)
        done |= nxt == EOS
        toks.append(nxt)
        if t == n_new - 1:
            break
        cos, sin = rope_cos_sin((c + t)[:, None], hs, cfg.rope_theta)
        x = gpt.embed_tokens(nxt[:, None])                                     # (B, 1, C)
        outputs = []
        for i, blk in enumerate(gpt.layers):
            q, k, v = qkv(blk, x, cos, sin)                                    # q (B, nh, 1, hs)
            gen_k[i][:, :, t] = k[:, :, 0]
            gen_v[i][:, :, t] = v[:, :, 0]
            q = q.reshape(R, m, nkv, rep, hs).transpose(1, 2)                  # (R, nkv, m, rep, hs)
            s_row = (q.reshape(R, nkv, m * rep, hs) @ row_k[i].transpose(-1, -2)).view(R, nkv, m, rep, 1, L)
            s_row = s_row.masked_fill(~row_visible, float("-inf")) * scale
            s_row = s_row.transpose(1, 2).reshape(B, nkv, rep, L)
            qb = q.transpose(1, 2).reshape(B, nkv, rep, hs)
            s_gen = qb @ gen_k[i][:, :, :t + 1].transpose(-1, -2) * scale     # (B, nkv, rep, t+1)
            p = torch.cat([s_row, s_gen], -1).softmax(-1)
            p_row = p[..., :L].reshape(R, m, nkv, rep, L).transpose(1, 2).reshape(R, nkv, m * rep, L)
            y = (p_row @ row_v[i]).view(R, nkv, m, rep, hs).transpose(1, 2).reshape(B, nkv, rep, hs)
            y = y + p[..., L:] @ gen_v[i][:, :, :t + 1]
            x = finish(blk, x, y.reshape(B, 1, -1))
            outputs.append(x)
        hn = gpt.norm(x)
        gen_h.append(gpt.features(outputs, hn, taps)[:, 0])
        nxt = gpt.lm_head(hn[:, -1]).argmax(-1)
    return torch.stack(toks, 1), torch.cat([prompt_h, torch.stack(gen_h, 1)], 1)


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
    ap.add_argument("--threads", type=int, default=0, help="0: all cores")
    ap.add_argument("--row-len", type=int, default=0, help="verifier context per row (default ctx-len)")
    ap.add_argument("--cuts-per-row", type=int, default=1, help="continuations sharing one row's prefill")
    ap.add_argument("--middle-share", type=float, default=0.5, help="share of cuts inside FIM middles (rows that have one)")
    ap.add_argument("--self-span", type=int, default=32, help="how deep into a continuation --self-cuts may cut")
    ap.add_argument("--self-cuts", type=int, default=0, help="more samples per continuation, cut inside it")
    ap.add_argument("--taps", type=int, nargs="*", default=[], help="verifier blocks (1..n_layer) whose outputs make "
                    "the hidden states, concatenated (default: the final state)")
    args = ap.parse_args()
    make(args.verifier, args.data, args.out, args.n, args.ctx_len, args.window, args.K, args.batch,
         args.seed, args.split, args.minutes, args.row_len, args.cuts_per_row, args.threads, args.middle_share,
         args.self_span, args.self_cuts, args.taps)


if __name__ == "__main__":
    main()
