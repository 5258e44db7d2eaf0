"""
The whole model pipeline in one command, at a named size:

  corpus -> tokenizer -> tokens -> verifier -> distillation data (the verifier's greedy continuations)
  -> ar draft model and DEER drafter (stage I, then stage II) trained on them -> evaluation -> export (int8)

    python -m training.pipeline --size tiny   --out training/work/p-tiny     # CI-sized smoke run
    python -m training.pipeline --size cpu    --out training/work/p-cpu      # what ships without a GPU
    python -m training.pipeline --size device --out /tmp/deer                # one GPU call (training/device.sh)

With several GPUs the verifier trains through torchrun (DDP): --gpus N.
Every stage writes into --out and is skipped if its output exists (so a run can resume).
The corpus is read from --corpus (a docs.jsonl[.gz] made by training/corpus.py, which needs
the network); --local adds local trees (DIR:LICENSE:NAME), e.g. site-packages on a GPU machine.
"""
import argparse
import glob
import gzip
import json
import lzma
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, asdict, field

import torch

from training.cli import to_flags
from training.train import TrainConfig
from training.train_drafter import DrafterTrainConfig

HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass
class Size:
    vocab: int = 8192
    verifier: str = "cpu"          # preset in training/train.py
    ar: str = "ar-cpu"
    seq_len: int = 512
    long_seq_len: int = 2048       # the last part of the run trains at this length
    long_from: float = 0.9
    batch: int = 16                # per process
    lr: float = 3e-3
    v_tokens: int = 0              # the verifier's whole schedule in tokens (0: v_minutes decides)
    v_minutes: float = 45.0        # one invocation's budget (with v_tokens, resume to continue)
    v_lr: float = 0.0              # the verifier's peak learning rate (0: lr); lower when continuing from v_init
    v_init: str = ""               # start the verifier from these weights (e.g. models/default), counts carried on
    v_seed: int = 0                # the verifier's data order: a new value per continued run, or it sees the same windows again
    v_eval_every: int = 100        # verifier steps between validation losses
    ar_minutes: float = 5.0
    distill_n: int = 100000
    distill_minutes: float = 10.0
    ctx_len: int = 64              # prompt tokens kept per sample (>= window)
    row_len: int = 512             # verifier context per distillation row
    cuts_per_row: int = 16         # continuations sharing one row's prefill
    self_span: int = 32            # distillation also cuts up to this many tokens into the verifier's continuations ...
    self_cuts: int = 2             # ... this many more samples per continuation (DEER: truncate the target's own answers)
    d_taps: list = field(default_factory=list)  # verifier blocks (1..n_layer) the drafter's hidden states come from ([]: the final state)
    window: int = 64               # drafter context window
    K: int = 16                    # longest block generated
    blocks: list = field(default_factory=lambda: [16])
    variants: list = field(default_factory=lambda: ["hidden"])  # context | hidden, "-kv": context as K/V only, "-suffix": FIM,
                                                                # "-taps": every block of d_taps (else the final state only),
                                                                # "-anchor" (with -kv): the bonus token a query position
    suffix_window: int = 16        # tokens after the cursor a "-suffix" drafter sees
    d_head_tokens: int = 0         # > 0: drafters score only the this many tokens the verifier writes most
    d_layers: int = 2
    d_decay: float = 0.0           # > 0: drafter loss weight of block position i is exp(-(i-1)/d_decay) (DFlash)
    d_batch: int = 64
    d_online: int = 0              # > 0: drafters train on fresh continuations, a buffer of this many samples refreshed
    d_online_reuse: float = 4.0    # while training, each drawn about this many times (train_drafter --online)
    d_online_initial: int = 0      # samples made before a stage's first step (0: the whole buffer); it grows after
    d_online_forced: float = 0.0   # stage I: this share of fresh samples teacher-forced (distill.TeacherForcedSource);
                                   # stage II reveals block tokens, which such samples mostly do not know, so it decodes
    d1_minutes: float = 12.0       # stage I per drafter
    d2_minutes: float = 5.0        # stage II per drafter
    eval_prompts: int = 30
    pass_at_1: int = 0             # problems per language (0: skip)
    compile: bool = False


SIZES = {
    "tiny": Size(vocab=512, verifier="tiny", ar="ar-tiny", seq_len=128, long_seq_len=0, batch=8, v_minutes=0.2,
                 ar_minutes=0.05, distill_n=128, distill_minutes=0.5, ctx_len=32, row_len=96, cuts_per_row=4,
                 window=32, K=16, blocks=[16], variants=["context", "hidden-suffix", "hidden-kv"], d_head_tokens=256, d_layers=1, d_batch=16,
                 d_online=256,
                 d1_minutes=0.05, d2_minutes=0.03, eval_prompts=2, pass_at_1=1),
    # what ships without a GPU: 2-core AMD EPYC; bf16 autocast where the CPU has AVX512-BF16 or AMX (--dtype auto),
    # fp32 elsewhere (emulated bf16 was 80x slower on Zen 3); speeds per CPU in training/README.md
    # (the drafter's window and head are cut for a cheap pass: measured 0.4x a verifier pass over the block, session 9)
    "cpu": Size(verifier="cpu-s", batch=8, v_minutes=75.0, ar_minutes=4.0, distill_minutes=15.0, row_len=256,
                cuts_per_row=32, window=32, variants=["hidden-kv-anchor"], d_head_tokens=2048, d_decay=4.0,
                d1_minutes=15.0, d2_minutes=5.0, compile=True),
    # one GPU call (training/device.sh gpu): the shipped tokenizer (--tokenizer), a verifier sized to ship
    # (12.5M params) trained at 2048 positions throughout (no recompile at a length switch), then the
    # distillation and the `cpu` drafter design with more steps, on fresh continuations (d_online: session 11's
    # drafter saw its 200k file samples ~6 times and overfitted); evaluation and export run on the CPU after
    "device": Size(vocab=8192, verifier="device", ar="ar-cpu", seq_len=2048, long_seq_len=0, batch=32,
                   lr=2e-3, v_minutes=2.6, v_eval_every=1000, ar_minutes=0.2, distill_n=200000,
                   distill_minutes=0.6, row_len=512, cuts_per_row=32, window=32, K=16, blocks=[16],
                   variants=["hidden-kv-anchor"], d_head_tokens=2048, d_decay=4.0, d_batch=256, d_online=300000,
                   d_online_initial=40000, d1_minutes=0.8, d2_minutes=0.3, eval_prompts=30, compile=True),
}


def sh(cmd, log):
    log("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True)


def _finished(path, total_tokens=0):
    extra = torch.load(path, map_location="cpu", weights_only=False)["extra"]
    return bool(extra.get("finished")) and extra.get("tokens", 0) >= total_tokens


@torch.no_grad()
def pass_costs_ms(verifier_path, drafter_paths, k, window, past_len=256, reps=50):
    """PyTorch CPU time (fastest of reps calls, batch 1) of the verifier's pass over one token and over a
    block of k+1 after past_len cached positions, and of each drafter's pass (window context, k masks)."""
    from training.export import load_checkpoint
    from training.tokenizer import MASK
    gpt, _ = load_checkpoint(verifier_path)
    cfg = gpt.cfg

    def best_ms(fn):                       # the fastest call: robust to another process taking the CPU
        fn()
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1000)
        return min(times)

    def verify(q):
        past = [(torch.randn(1, cfg.n_kv_head, past_len, cfg.head_dim),) * 2 for _ in range(cfg.n_layer)]
        ids = torch.randint(7, cfg.vocab_size, (1, q))
        am = torch.ones(1, past_len + q, dtype=torch.long)
        pos = torch.arange(past_len, past_len + q)[None]
        return best_ms(lambda: gpt.forward_cached(ids, am, pos, past))
    out = {"verify_one_ms": verify(1), "verify_block_ms": verify(k + 1), "drafters": {}}
    for path in drafter_paths:
        d, _ = load_checkpoint(path)
        c = min(window, d.cfg.context_window)
        ids = torch.tensor([torch.randint(7, cfg.vocab_size, (c,)).tolist() + [MASK] * k])
        h = torch.randn(1, c, d.cfg.hidden_size) if d.cfg.hidden_size else None
        suf = torch.full((1, d.cfg.suffix_window), MASK) if d.cfg.suffix_window else None
        out["drafters"][path] = best_ms(lambda: d(ids, h, k=k, suffix_ids=suf))
    return out


def run(size: Size, out, corpus, tokenizer=None, local=(), gpus=1, eval_dir=None, jobs=1, resume=False,
        log=print, stop_after=None):
    """stop_after "drafters": stop before evaluation and export (the GPU part of a run; the rest runs on
    a CPU later with the same --out)."""
    os.makedirs(out, exist_ok=True)
    py = sys.executable
    t_start = time.time()
    timings = {}

    def stage(name, path, fn):
        if os.path.exists(path):
            log(f"[{name}] exists, skipped")
            return
        t = time.time()
        fn()
        timings[name] = time.time() - t
        log(f"[{name}] {timings[name]:.0f}s")

    # corpus: the prebuilt docs (+ local trees, filtered/deduplicated/decontaminated the same way)
    cdir = os.path.join(out, "corpus")

    def make_corpus():
        from training import corpus as C
        os.makedirs(cdir, exist_ok=True)
        opener = gzip.open if corpus.endswith(".gz") else lzma.open if corpus.endswith(".xz") else open
        base = os.path.dirname(corpus)
        with opener(corpus, "rt", encoding="utf-8") as f, open(os.path.join(cdir, "docs.jsonl"), "w") as g:
            shutil.copyfileobj(f, g)
        shutil.copy(os.path.join(base, "manifest.json"), os.path.join(cdir, "manifest.json"))
        if local:
            man = json.load(open(os.path.join(cdir, "manifest.json")))
            extra = C.build(os.path.join(out, "corpus_local"), os.path.join(out, "src"), eval_dir,
                            {"languages": man["languages"]}, local=local, log=log)
            with open(os.path.join(cdir, "docs.jsonl"), "a") as g, \
                    open(os.path.join(out, "corpus_local", "docs.jsonl")) as f:
                shutil.copyfileobj(f, g)
            man["sources"] += extra["sources"]
            man["local"] = {k: extra[k] for k in ("dedup", "decontamination", "per_language")}
            for lang, n in extra["per_language"].items():      # per_language: what docs.jsonl now holds
                mine = man.setdefault("per_language", {}).setdefault(lang, {"files": 0, "bytes": 0})
                mine["files"] += n["files"]
                mine["bytes"] += n["bytes"]
            json.dump(man, open(os.path.join(cdir, "manifest.json"), "w"), indent=2)
    stage("corpus", os.path.join(cdir, "manifest.json"), make_corpus)

    tok = os.path.join(out, "tokenizer.json")

    def make_tok():
        if tokenizer:
            shutil.copy(tokenizer, tok)
            return
        from training import tokenizer as T
        texts, n = [], 0
        for line in open(os.path.join(cdir, "docs.jsonl"), encoding="utf-8"):
            texts.append(json.loads(line)["text"])
            n += len(texts[-1])
            if n > 30_000_000:
                break
        T.train_tokenizer(texts, size.vocab, tok)
    stage("tokenizer", tok, make_tok)

    tdir = os.path.join(out, "tokens")
    stage("tokens", os.path.join(tdir, "stats.json"),
          lambda: sh([py, "-m", "training.data", "--corpus", cdir, "--tokenizer", tok, "--out", tdir], log))

    def train_lm(cfg):
        launcher = [py, "-m"] if gpus <= 1 else ["torchrun", f"--nproc_per_node={gpus}", "-m"]
        sh(launcher + ["training.train"] + to_flags(cfg), log)

    v = os.path.join(out, "verifier.pt")
    v_cfg = TrainConfig(preset=size.verifier, data=tdir, out=v, batch_size=size.batch, seq_len=size.seq_len,
                        long_seq_len=size.long_seq_len, long_from=size.long_from, total_tokens=size.v_tokens,
                        minutes=size.v_minutes, lr=size.v_lr or size.lr, min_lr=(size.v_lr or size.lr) / 10, eval_every=size.v_eval_every,
                        compile=size.compile, resume=resume, init=size.v_init, seed=size.v_seed)
    if os.path.exists(v) and not _finished(v, size.v_tokens):
        if not resume:
            raise SystemExit(f"{v} is a stopped or extended run: continue it with --resume")
        os.remove(v)                                   # continue the run from verifier.pt.state
    stage("verifier", v, lambda: train_lm(v_cfg))
    if "verifier" in timings:                          # a new verifier: everything distilled from it is stale
        for stale in glob.glob(os.path.join(out, "distill.npz")) + glob.glob(os.path.join(out, "ar.pt")) + \
                glob.glob(os.path.join(out, "drafter-*.pt")) + glob.glob(os.path.join(out, "eval.json")) + \
                glob.glob(os.path.join(out, "export.json")):
            log(f"stale after the new verifier: {stale}")
            os.remove(stale)
    dist = os.path.join(out, "distill.npz")
    trained_from_it = [os.path.join(out, "ar.pt")] + [os.path.join(out, f"drafter-{var}-k{k}-s{n}.pt")
                                                      for k in size.blocks for var in size.variants for n in (1, 2)]
    # a run finished on a CPU after its GPU part has every model distilled, not the distillation (left on the GPU machine)
    distill_done = dist if os.path.exists(dist) or not all(map(os.path.exists, trained_from_it)) else trained_from_it[0]
    stage("distill", distill_done, lambda: sh([py, "-m", "training.distill", "--verifier", v, "--data", tdir, "--out", dist,
                                       "--n", str(size.distill_n), "--ctx-len", str(size.ctx_len),
                                       "--row-len", str(size.row_len), "--cuts-per-row", str(size.cuts_per_row),
                                       "--window", str(size.window), "--K", str(size.K),
                                       "--self-span", str(size.self_span), "--self-cuts", str(size.self_cuts),
                                       "--taps", *map(str, size.d_taps),
                                       "--minutes", str(size.distill_minutes),
                                       "--batch", "1024" if torch.cuda.is_available() else "256"], log))

    ar = os.path.join(out, "ar.pt")          # the `ar` baseline, distilled from the same continuations
    stage("ar", ar, lambda: train_lm(TrainConfig(preset=size.ar, data=tdir, out=ar, distill=dist, batch_size=size.d_batch,
                                                 minutes=size.ar_minutes, lr=size.lr, min_lr=size.lr / 10,
                                                 eval_every=100, compile=size.compile)))

    # drafters: each (variant, block) is a chain stage I -> stage II; chains run `jobs` at a time
    drafters, chains = [], []
    for k in size.blocks:
        for var in size.variants:
            s1 = os.path.join(out, f"drafter-{var}-k{k}-s1.pt")
            s2 = os.path.join(out, f"drafter-{var}-k{k}-s2.pt")
            common = dict(verifier=v, distill=dist, k=k, window=size.window, n_layer=size.d_layers,
                          batch_size=size.d_batch, hidden=var.startswith("hidden"),
                          suffix=size.suffix_window if var.endswith("-suffix") else 0,
                          kv_context="-kv" in var, anchor="-anchor" in var, taps="-taps" in var,
                          head_tokens=size.d_head_tokens, decay=size.d_decay, log_every=50)
            if size.d_online:
                common.update(online=size.d_online, online_data=tdir, online_reuse=size.d_online_reuse,
                              online_initial=size.d_online_initial,
                              online_batch=1024 if torch.cuda.is_available() else 64, online_row_len=size.row_len,
                              online_cuts_per_row=size.cuts_per_row, online_self_cuts=size.self_cuts)
            chains.append([(f"drafter {var} k={k} I", s1,
                            DrafterTrainConfig(out=s1, stage=1, minutes=size.d1_minutes,
                                               online_forced=size.d_online_forced, **common)),
                           (f"drafter {var} k={k} II", s2,
                            DrafterTrainConfig(out=s2, stage=2, init=s1, lr=5e-4, min_lr=5e-5,
                                               minutes=size.d2_minutes, **common))])
            drafters += [s1, s2]

    def run_chain(chain):
        for name, path, cfg in chain:
            stage(name, path, lambda: sh([py, "-m", "training.train_drafter"] + to_flags(cfg), log))
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        list(pool.map(run_chain, chains))

    def summary(**more):
        return {"size": asdict(size), "timings_s": timings, "total_s": time.time() - t_start, **more,
                "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
    if stop_after == "drafters":
        result = summary(stopped_after=stop_after)
        json.dump(result, open(os.path.join(out, "pipeline-gpu.json"), "w"), indent=2)
        return result

    ev = os.path.join(out, "eval.json")
    ev_cmd = [py, "-m", "training.evaluate", "--verifier", v, "--drafter", *drafters, "--ar", ar, "--tokenizer", tok,
              "--data", tdir, "--n-prompts", str(size.eval_prompts), "--k", *map(str, size.blocks),
              "--pass-at-1", str(size.pass_at_1), "--out", ev]
    if eval_dir:
        ev_cmd += ["--eval", eval_dir]
    stage("evaluate", ev, lambda: sh(ev_cmd, log))

    # ship the drafter with the best estimated speedup at block 16 (or the first block): its mean accepted
    # length on the eval prompts over the measured cost of a draft-and-verify pass
    res = json.load(open(ev))["accepted_length"]
    k0 = 16 if 16 in size.blocks else size.blocks[0]

    def tau(path):
        name = os.path.basename(path)
        vals = [r["tau"] for key, r in res.items() if key.startswith(f"{name} k={k0} ")]
        return sum(vals) / max(1, len(vals))
    costs = pass_costs_ms(v, [d for d in drafters if f"-k{k0}-" in d], k0, size.window)
    choice = {d: {"tau": tau(d), "draft_ms": c, "estimated_speedup": tau(d) * costs["verify_one_ms"] /
                  (costs["verify_block_ms"] + c)} for d, c in costs["drafters"].items()}
    best = max(choice, key=lambda d: choice[d]["estimated_speedup"])
    log(f"verifier pass: one token {costs['verify_one_ms']:.2f} ms, block {costs['verify_block_ms']:.2f} ms")
    for d, r in choice.items():
        log(f"  {os.path.basename(d)}: tau {r['tau']:.2f}, pass {r['draft_ms']:.2f} ms, "
            f"estimated {r['estimated_speedup']:.2f}x")
    log(f"best drafter: {best}")

    model_dir = os.path.join(out, "model")

    def export():
        sh([py, "-m", "training.export", "--verifier", v, "--drafter", best, "--ar", ar, "--tokenizer", tok,
            "--out", model_dir, "--quantize", "--data", tdir, "--report", os.path.join(out, "export.json")], log)
    stage("export", os.path.join(out, "export.json"), export)
    result = summary(best_drafter=best, drafter_choice=choice, pass_costs_ms=costs, gpus=gpus)
    json.dump(result, open(os.path.join(out, "pipeline.json"), "w"), indent=2)
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", choices=list(SIZES), default="cpu")
    ap.add_argument("--out", required=True)
    ap.add_argument("--corpus", default=os.path.join(HERE, "work", "corpus", "docs.jsonl"))
    ap.add_argument("--tokenizer", help="reuse this tokenizer.json (e.g. to draft for an existing verifier)")
    ap.add_argument("--local", nargs="*", default=[])
    ap.add_argument("--gpus", type=int, default=torch.cuda.device_count())
    ap.add_argument("--eval", default=os.path.join(HERE, "..", "..", "shared", "eval"))
    ap.add_argument("--set", nargs="*", default=[], help="override size fields, e.g. v_minutes=1 blocks=[16]")
    ap.add_argument("--jobs", type=int, default=1, help="drafters trained at the same time")
    ap.add_argument("--stop-after", choices=["drafters"], help="stop before evaluation and export")
    ap.add_argument("--resume", action="store_true",
                    help="continue a stopped run: the verifier from its last state, then every stage not yet done")
    args = ap.parse_args()
    size = SIZES[args.size]
    for kv in args.set:
        k, v = kv.split("=", 1)
        setattr(size, k, json.loads(v))
    print(json.dumps(run(size, args.out, args.corpus, args.tokenizer, args.local, args.gpus,
                         args.eval if os.path.isdir(args.eval) else None, args.jobs, args.resume,
                         stop_after=args.stop_after), indent=2))


if __name__ == "__main__":
    main()
