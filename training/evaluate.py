"""
Evaluation in PyTorch, before export.

accepted_length: simulate greedy speculative decoding. The verifier's greedy continuation
  g0..gN of a prompt is fixed, so a draft of k tokens at step p is accepted up to its first
  disagreement with g[p:p+k]; each verifier pass then yields the accepted tokens plus one
  (the verifier's own token). Mean accepted length tau = generated tokens / verifier passes
  (so tau >= 1; drafted tokens accepted per pass = tau - 1).
pass_at_1: greedy completion of ../shared/eval prompts, cut at the stop tokens, run with the
  tests (python3; TypeScript via esbuild's transform, then node), with a time limit.

    python -m training.evaluate --verifier v.pt --drafter d.pt --tokenizer tok.json --eval ../shared/eval
"""
import argparse
import json
import os
import re
import subprocess
import tempfile

import numpy as np
import torch

from training import tokenizer as toklib
from training.distill import greedy_with_hidden
from training.export import load_checkpoint
from training.tokenizer import EOS, MASK

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_prompts(eval_dir, lang, n=None):
    rows = [json.loads(l) for l in open(os.path.join(eval_dir, f"mbpp-{lang}-reworded.jsonl"), encoding="utf-8")]
    return rows[:n] if n else rows


@torch.no_grad()
def draft_deer(drafter, ctx_ids, hidden_rows, k, suffix_ids=(EOS,)):
    """ctx_ids: list (the verified sequence, last token = pending bonus); hidden_rows (len, C) or None;
    suffix_ids: the first tokens after the cursor, as the engine sends them (EOS alone: none)."""
    c = min(len(ctx_ids), drafter.cfg.context_window)
    dev = next(drafter.parameters()).device
    ids = torch.tensor([ctx_ids[-c:] + [MASK] * k], device=dev)
    h = None
    if drafter.cfg.hidden_size > 0:
        h = hidden_rows[-c:].clone()[None]
        h[:, -1] = 0.0
    suf = torch.tensor([list(suffix_ids)], device=dev) if drafter.cfg.suffix_window > 0 else None
    return drafter(ids, h, k=k, suffix_ids=suf)[0].argmax(-1).tolist()


@torch.no_grad()
def draft_ar(ar, ctx_ids, k, window=256):
    ids = torch.tensor([ctx_ids[-window:]], device=next(ar.parameters()).device)
    return ar.generate_greedy(ids, k)[0].tolist()


HEALING = re.compile(r"(?:\s+|[ \t]?[A-Za-z0-9_$]{1,32})$")


def healing_text(prefix):
    """What the engine's token healing leaves out of a prompt and makes the first tokens spell
    again (src/engine/index.ts healingText): trailing whitespace, else a word being typed."""
    m = HEALING.search(prefix)
    return m.group(0) if m else ""


def healed(prompt):
    """(the prompt as the engine sends it, the text its first tokens must spell: healing_text)."""
    owed = healing_text(prompt)
    return prompt[:len(prompt) - len(owed)], owed


def token_texts(tok):
    """Each id's text ('' for control tokens), for the healing constraint."""
    return [tok.decode([i]) for i in range(tok.get_vocab_size())]


@torch.no_grad()
def healed_start(verifier, prompt_ids, owed, texts):
    """The verifier's greedy first tokens under token healing: while `owed` (the text the prompt
    left out) is not spelled, only tokens agreeing with it are allowed (src/engine/speculative.ts)."""
    dev = next(verifier.parameters()).device
    ids, forced = list(prompt_ids), []
    while owed:
        allowed = [i for i, t in enumerate(texts) if t and (owed.startswith(t) or t.startswith(owed))]
        logits = verifier(torch.tensor([ids], device=dev))[0][0, -1]
        best = max(allowed, key=lambda i: logits[i].item())
        t = texts[best]
        owed = owed[len(t):] if owed.startswith(t) else ""
        ids.append(best)
        forced.append(best)
    return forced


@torch.no_grad()
def trajectories(verifier, prompts_ids, n_new=64, taps=(), owed=None, texts=None):
    """The verifier's greedy continuation of each prompt (cut after EOS) and the hidden states
    (taps: GPT.features) of prompt + continuation. Computed once, shared by every drafter evaluated.
    owed: per prompt, the text token healing left out of it (healing_text), spelled by the first
    tokens of the continuation as in the engine; texts: token_texts(tok), needed with owed."""
    out = []
    for i, p in enumerate(prompts_ids):
        forced = healed_start(verifier, p, owed[i], texts) if owed and owed[i] else []
        idx = torch.tensor([p + forced], device=next(verifier.parameters()).device)
        g, ph, gh = greedy_with_hidden(verifier, idx, n_new + 1 - len(forced), taps)
        g = forced + g[0].tolist()
        if EOS in g:
            g = g[:g.index(EOS) + 1]
        out.append((p, g, torch.cat([ph[0], gh[0]], 0).float()))     # hidden of p + g[:-1]
    return out


@torch.no_grad()
def accepted_length(verifier, prompts_ids, drafter=None, ar=None, k=16, n_new=64, trajs=None, suffixes=None):
    """prompts_ids: list of token lists; suffixes: per prompt, the tokens after the cursor the
    drafter is given (None: EOS alone). Returns tau and the accepted-length histogram."""
    total_tokens, passes, hist = 0, 0, np.zeros(k + 2, dtype=np.int64)
    trajs = trajs or trajectories(verifier, prompts_ids, n_new)
    for i, (p, g, hid) in enumerate(trajs):
        suffix = suffixes[i] if suffixes else [EOS]
        pos = 1                                                      # g0 comes from the prompt pass
        while pos < len(g):
            ctx = p + g[:pos]
            if drafter is not None:
                d = draft_deer(drafter, ctx, hid[:len(ctx)], k, suffix)
            else:
                d = draft_ar(ar, ctx, k)
            n = 0
            while n < len(d) and pos + n < len(g) and d[n] == g[pos + n]:
                n += 1
            step = min(n + 1, len(g) - pos)
            hist[min(n, k + 1)] += 1
            total_tokens += step
            passes += 1
            pos += step
    # acceptance by position, as EAGLE and DFlash report it: the share of passes whose draft was
    # accepted at least up to position i (i = 1..k)
    at_least = hist[::-1].cumsum()[::-1] / max(1, passes)
    return {"tau": total_tokens / max(1, passes), "passes": passes, "tokens": total_tokens,
            "accepted_hist": hist.tolist(), "accept_rate_by_position": at_least[1:k + 1].tolist(), "k": k}


# ----------------------------------------------------------------------------- pass@1

@torch.no_grad()
def complete(verifier, tok, prompt, max_new=192, stop=(), texts=None):
    """The verifier's greedy completion of prompt, cut at the first stop string; with texts
    (token_texts), token healing as the engine does it: the prompt leaves out healing_text and the
    first tokens spell it again (the completion returned starts after it)."""
    sent, owed = healed(prompt) if texts else (prompt, "")
    ids = tok.encode(sent).ids
    ids = ids[-(verifier.cfg.max_seq_len - max_new):]
    forced = healed_start(verifier, ids, owed, texts) if owed else []
    dev = next(verifier.parameters()).device
    out = forced + verifier.generate_greedy(torch.tensor([ids + forced], device=dev), max_new - len(forced),
                                            eos_id=EOS)[0].tolist()
    if EOS in out:
        out = out[:out.index(EOS)]
    text = tok.decode(out, skip_special_tokens=True)[len(owed):]
    cut = min([text.find(s) for s in stop if s in text] or [len(text)])
    return text[:cut]


def run_program(code, lang, timeout=10):
    with tempfile.TemporaryDirectory() as d:
        if lang == "py":
            path = os.path.join(d, "t.py")
            open(path, "w").write(code)
            cmd = ["python3", path]
        else:
            src = os.path.join(d, "t.ts")
            open(src, "w").write(code)
            js = os.path.join(d, "t.js")
            esbuild = os.path.join(ROOT, "node_modules", ".bin", "esbuild")
            r = subprocess.run([esbuild, src, "--loader:.ts=ts", f"--outfile={js}"], capture_output=True, timeout=timeout)
            if r.returncode != 0:
                return False
            cmd = ["node", js]
        try:
            return subprocess.run(cmd, capture_output=True, timeout=timeout, cwd=d).returncode == 0
        except subprocess.TimeoutExpired:
            return False


def pass_at_1(verifier, tok, eval_dir, lang, n=None, max_new=192, log=print):
    rows = load_prompts(eval_dir, lang, n)
    texts = token_texts(tok)
    ok = 0
    for i, r in enumerate(rows):
        body = complete(verifier, tok, r["prompt"], max_new, r["stop_tokens"], texts)
        ok += run_program(r["prompt"] + body + "\n\n" + r["tests"], lang)
        if (i + 1) % 50 == 0:
            log(f"pass@1 {lang}: {ok}/{i + 1}")
    return {"lang": lang, "n": len(rows), "passed": ok, "pass_at_1": ok / max(1, len(rows))}


@torch.no_grad()
def bits_per_byte(verifier, tok, data_dir, seq_len=512, max_tokens=200_000):
    """Bits per UTF-8 byte of the held-out split's plain documents (no FIM), scored in windows of
    seq_len tokens (each window's first token is not scored)."""
    from training.data import TokenData
    d = TokenData(data_dir, "val")
    dev = next(verifier.parameters()).device
    nats, nbytes, ntok = 0.0, 0, 0
    for i in range(len(d.docs)):
        ids = d.doc(i).astype(np.int64)
        for s in range(0, len(ids) - 1, seq_len):
            w = ids[s:s + seq_len + 1]
            if len(w) < 2:
                break
            x = torch.tensor(w[None, :-1], device=dev)
            y = torch.tensor(w[None, 1:], device=dev)
            _, loss = verifier(x, y)
            nats += loss.item() * (len(w) - 1)
            nbytes += len(tok.decode(w[1:].tolist(), skip_special_tokens=False).encode("utf-8"))
            ntok += len(w) - 1
        if ntok >= max_tokens:
            break
    return {"bits_per_byte": nats / np.log(2) / max(1, nbytes), "nats_per_token": nats / max(1, ntok),
            "tokens": ntok, "bytes": nbytes, "seq_len": seq_len}


def is_loop(ids, min_repeats=3, max_period=16, min_span=12):
    """True when the sequence ends in a cycle: its last max(min_span, min_repeats * p) tokens repeat
    with some period p <= max_period (e.g. `, 0, 0, 0, ...` or a line written over and over)."""
    for p in range(1, max_period + 1):
        span = max(min_span, min_repeats * p)
        if len(ids) >= span and all(ids[-i] == ids[-i - p] for i in range(1, span - p + 1)):
            return True
    return False


def repetition_share(trajs):
    """Share of greedy completions (trajectories, EOS excluded) that fall into a repetition loop."""
    loops = [is_loop([t for t in g if t != EOS]) for _, g, _ in trajs]
    return {"looping": int(sum(loops)), "n": len(loops), "share": float(np.mean(loops)) if loops else 0.0}


def heldin_prompts(data_dir, n, ctx_len=128, seed=1):
    """Prompts cut from validation rows (held out from training, same distribution), and the
    suffix tokens of cuts that fall in a FIM middle (EOS alone otherwise)."""
    from training.data import TokenData, Batcher
    from training.distill import suffix_of_cut
    b = Batcher(TokenData(data_dir, "val"), seq_len=256, seed=seed)
    rng = np.random.default_rng(seed)
    out, sufs = [], []
    for _ in range(n):
        r = b.row()
        cut = int(rng.integers(ctx_len, len(r) + 1))
        out.append(r[cut - ctx_len:cut])
        s = suffix_of_cut(r, cut)
        sufs.append(s[:s.index(EOS)] if EOS in s else s)
    return out, [s or [EOS] for s in sufs]


def eval_prompts(tok, eval_dir, lang, n):
    """The eval prompts as the engine sends them: without the text token healing leaves out.
    Returns prompt ids and that text (trajectories' owed)."""
    sent, owed = zip(*(healed(r["prompt"]) for r in load_prompts(eval_dir, lang, n)))
    return [tok.encode(p).ids for p in sent], list(owed)


def fim_prompts(tok, eval_dir, lang, n, fim_order="spm", suffix_tokens=64):
    """Fill-in-the-middle prompts from eval programs: prefix = the prompt (signature and
    docstring) without the text token healing leaves out, suffix = the tests after it; the
    engine's layout (psm or spm). Returns prompt ids, the first suffix_tokens suffix ids (what the
    engine sends a drafter) and the healed text (trajectories' owed)."""
    from training.tokenizer import FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX
    ids, sufs, owed = [], [], []
    for r in load_prompts(eval_dir, lang, n):
        sent, heal = healed(r["prompt"])
        owed.append(heal)
        p, s = tok.encode(sent).ids, tok.encode("\n" + r["tests"]).ids
        ids.append([FIM_SUFFIX] + s + [FIM_PREFIX] + p + [FIM_MIDDLE] if fim_order == "spm"
                   else [FIM_PREFIX] + p + [FIM_SUFFIX] + s + [FIM_MIDDLE])
        sufs.append(s[:suffix_tokens])
    return ids, sufs, owed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--verifier", required=True)
    ap.add_argument("--drafter", nargs="*", default=[])
    ap.add_argument("--ar")
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--data", help="token dir (for held-in prompts)")
    ap.add_argument("--eval", default=os.path.join(ROOT, "..", "shared", "eval"))
    ap.add_argument("--n-prompts", type=int, default=40)
    ap.add_argument("--n-new", type=int, default=64)
    ap.add_argument("--k", type=int, nargs="*", default=[16])
    ap.add_argument("--pass-at-1", type=int, default=0, help="number of eval problems per language (0: skip)")
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(1)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    verifier, _ = load_checkpoint(args.verifier)
    verifier = verifier.to(dev)
    tok = toklib.load(args.tokenizer)
    # eval and FIM prompts as the engine sends them: token healing leaves out the prompt's trailing
    # whitespace or partial word, and the first tokens spell it again (held-in cuts are token boundaries)
    sets, suffixes, owed, texts = {}, {}, {}, token_texts(tok)
    if args.data:
        sets["held_in"], suffixes["held_in"] = heldin_prompts(args.data, args.n_prompts)
    for lang in ("py", "ts"):
        sets[f"eval_{lang}"], owed[f"eval_{lang}"] = eval_prompts(tok, args.eval, lang, args.n_prompts)
    for lang in ("py", "ts"):
        sets[f"fim_{lang}"], suffixes[f"fim_{lang}"], owed[f"fim_{lang}"] = fim_prompts(tok, args.eval, lang, args.n_prompts)
    res = {"accepted_length": {}}
    trajs = {name: trajectories(verifier, prompts, args.n_new, owed=owed.get(name), texts=texts) for name, prompts in sets.items()}
    tapped = {(): trajs}                                       # per set of tapped blocks (drafters reading several)
    for name, t in trajs.items():
        res[f"repetition_{name}"] = repetition_share(t)
        print(f"repetition loops {name}: {res[f'repetition_{name}']}", flush=True)
    if args.data:
        res["held_out"] = bits_per_byte(verifier, tok, args.data)
        print(f"held-out: {res['held_out']}", flush=True)
    for path in args.drafter + ([args.ar] if args.ar else []):
        m, _ = load_checkpoint(path)
        m = m.to(dev)
        is_ar = path == args.ar
        name = os.path.basename(path)
        taps = () if is_ar else tuple(m.cfg.hidden_layers)
        if taps not in tapped:
            tapped[taps] = {name: trajectories(verifier, prompts, args.n_new, taps, owed.get(name), texts)
                            for name, prompts in sets.items()}
        for k in args.k:
            if not is_ar and k > m.cfg.block_size:
                continue
            for sname, prompts in sets.items():
                r = accepted_length(verifier, prompts, drafter=None if is_ar else m, ar=m if is_ar else None,
                                    k=k, n_new=args.n_new, trajs=tapped[taps][sname], suffixes=suffixes.get(sname))
                res["accepted_length"][f"{name} k={k} {sname}"] = r
                print(f"{name} k={k} {sname}: tau {r['tau']:.2f} hist {r['accepted_hist']}", flush=True)
    if args.pass_at_1:
        for lang in ("py", "ts"):
            res[f"pass_at_1_{lang}"] = pass_at_1(verifier, tok, args.eval, lang, args.pass_at_1)
            print(json.dumps(res[f"pass_at_1_{lang}"]), flush=True)
    if args.out:
        json.dump(res, open(args.out, "w"), indent=2)


if __name__ == "__main__":
    main()
