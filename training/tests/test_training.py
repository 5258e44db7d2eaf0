"""Resumable training, shared-prefix distillation and the Hugging Face weights, on a toy corpus."""
import glob
import os
import shutil
import sysconfig

import numpy as np
import pytest
import torch

from training import data, tokenizer as toklib
from training.distill import greedy_from_cuts, greedy_with_hidden, suffix_of_cut, in_middle, choose_cuts
from training.hf import load_verifier, save_verifier
from training.schedule import lr_at, progress_of
from training.train import TrainConfig, train


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    texts = [open(p, encoding="utf-8").read() for p in sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))[:40]]
    import json
    with open(d / "docs.jsonl", "w") as f:
        for i, t in enumerate(texts):
            f.write(json.dumps({"lang": "python", "source": "stdlib", "path": str(i), "text": t}) + "\n")
    json.dump({"languages": {"python": {"ext": [".py"], "weight": 1.0, "cap_mb": 1}}}, open(d / "manifest.json", "w"))
    toklib.train_tokenizer(texts, 512, str(d / "tok.json"))
    data.prepare(str(d), str(d / "tok.json"), str(d / "tokens"), val_every=10, log=lambda *a: None)
    return str(d / "tokens")


def cfg(tokens, out, **kw):
    base = dict(preset="tiny", data=tokens, out=str(out), batch_size=4, seq_len=64, lr=3e-3, min_lr=3e-4, warmup=2,
                eval_every=10**9, log_every=10**9, threads=1, ckpt_minutes=0)
    return TrainConfig(**{**base, **kw})


def test_resume_continues_the_same_run(tokens, tmp_path):
    total = 12 * 4 * 64                                           # the schedule: 12 steps of 4 x 64 tokens
    whole, _ = train(cfg(tokens, tmp_path / "whole.pt", total_tokens=total), log=lambda *a: None)
    # a budget of 0.6 ms: the first step starts within it, the second does not (whatever the CPU)
    _, first = train(cfg(tokens, tmp_path / "split.pt", total_tokens=total, minutes=1e-5), log=lambda *a: None)
    assert 0 < first["steps"] < 12 and not first["finished"]      # the session budget stopped it early
    split, res = train(cfg(tokens, tmp_path / "split.pt", total_tokens=total, resume=True), log=lambda *a: None)
    assert res["steps"] == 12 and res["finished"] and len(res["sessions"]) == 2
    for (k, a), b in zip(whole.state_dict().items(), split.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k


def test_token_budget_drives_the_schedule():
    assert progress_of(step=5, tokens=500, total_tokens=1000) == 0.5
    assert progress_of(step=5, max_steps=10, tokens=900, total_tokens=1000) == 0.9
    assert lr_at(0, 0.0, 1.0, 0.1, warmup=10) == pytest.approx(0.1)
    assert lr_at(100, 1.0, 1.0, 0.1, warmup=10) == pytest.approx(0.1)
    assert lr_at(100, 0.5, 1.0, 0.1, warmup=10) == pytest.approx(0.55)


def test_shared_prefix_distillation_equals_plain_greedy_decoding(tokens, tmp_path):
    """The shared-KV decoder against the plainest reference: full forward passes without a cache
    (float64, so the two orders of summation cannot flip an argmax)."""
    gpt, _ = train(cfg(tokens, tmp_path / "v.pt", max_steps=20), log=lambda *a: None)
    gpt = gpt.double()
    b = data.Batcher(data.TokenData(tokens, "train"), 128, seed=3)
    rows = torch.tensor([b.row()[:100] for _ in range(2)])
    cuts = torch.tensor([[40, 77, 100], [60, 41, 90]])
    toks, hid = greedy_from_cuts(gpt, rows, cuts, 9, 16)
    assert toks.shape == (6, 9) and hid.shape == (6, 16 + 8, gpt.cfg.n_embd)
    for i, (r, c) in enumerate([(0, 40), (0, 77), (0, 100), (1, 60), (1, 41), (1, 90)]):
        seq = rows[r, :c]
        for _ in range(9):
            logits, _, h = gpt(seq[None], return_hidden=True)
            seq = torch.cat([seq, logits[0, -1].argmax()[None]])
        assert torch.equal(toks[i], seq[c:]), i
        assert torch.allclose(hid[i], h[0, c - 16:c + 8], atol=1e-9), i
    one, ph, gh = greedy_with_hidden(gpt, rows[1:2, :41], 9)
    assert torch.equal(one[0], toks[4]) and torch.allclose(torch.cat([ph[:, -16:], gh], 1)[0], hid[4])


def test_hf_weights_round_trip_and_continue_training(tokens, tmp_path):
    gpt, _ = train(cfg(tokens, tmp_path / "v.pt", max_steps=4), log=lambda *a: None)
    from training.export import hf_config
    import json
    json.dump(hf_config(gpt.cfg, toklib.EOS), open(tmp_path / "config.json", "w"))
    save_verifier(gpt, str(tmp_path))
    back = load_verifier(str(tmp_path))
    for (k, a), b in zip(gpt.state_dict().items(), back.state_dict().values()):
        assert torch.allclose(a, b, rtol=1e-2, atol=1e-2), k        # bf16 on disk
        assert torch.equal(a.to(torch.bfloat16).float(), b), k
    cont, res = train(cfg(tokens, tmp_path / "c.pt", max_steps=2, init=str(tmp_path)), log=lambda *a: None)
    assert res["steps"] == 2 and "cumulative" not in res            # a folder without a run record: nothing to count on


def test_a_run_from_shipped_weights_counts_on_from_them(tokens, tmp_path):
    """The model card reports what the weights saw in all runs, so a run started from a model folder adds to
    the folder's training_run.json, and keeps adding when it is stopped and resumed."""
    from training.export import hf_config, training_record, RUN_RECORD
    import json
    gpt, first = train(cfg(tokens, tmp_path / "v.pt", max_steps=3), log=lambda *a: None)
    folder = tmp_path / "model"
    folder.mkdir()
    json.dump(hf_config(gpt.cfg, toklib.EOS), open(folder / "config.json", "w"))
    save_verifier(gpt, str(folder))
    json.dump(training_record(first), open(folder / RUN_RECORD, "w"))
    total = 5 * 4 * 64
    _, part = train(cfg(tokens, tmp_path / "c.pt", total_tokens=total, minutes=1e-5, init=str(folder)),
                    log=lambda *a: None)
    assert part["cumulative"]["steps"] == 3 + part["steps"] and not part["finished"]
    _, res = train(cfg(tokens, tmp_path / "c.pt", total_tokens=total, resume=True, init=str(folder)),
                   log=lambda *a: None)
    whole = res["cumulative"]
    assert res["steps"] == 5 and whole["steps"] == 8 and whole["tokens"] == first["tokens"] + total
    assert whole["train_time_s"] == pytest.approx(first["train_time_s"] + res["train_time_s"])
    assert [s["start_step"] for s in whole["sessions"]] == [0, 3, 3 + part["steps"]]
    assert training_record(res) == whole                          # what export writes into the next model folder


def test_suffix_of_a_cut_in_psm_spm_and_plain_rows():
    from training.tokenizer import EOS, FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE
    P, S, M = [10, 11, 12], [20, 21, 22, 23], [30, 31, 32]
    psm = [9, 9, EOS, FIM_PREFIX] + P + [FIM_SUFFIX] + S + [FIM_MIDDLE] + M + [EOS, 40, 41]
    spm = [FIM_SUFFIX] + S + [FIM_PREFIX] + P + [FIM_MIDDLE] + M + [EOS]
    for row in (psm, spm):
        mid = row.index(FIM_MIDDLE)
        for cut in range(mid + 1, mid + 4):                      # inside the middle: the suffix, padded
            assert suffix_of_cut(row, cut, 6) == S + [EOS, EOS]
            assert suffix_of_cut(row, cut, 2) == S[:2]
        assert suffix_of_cut(row, mid, 6) == [EOS] * 6           # still in the prefix (psm) / the header
        assert [c for c in range(len(row) + 1) if in_middle(row)[c]] == list(range(mid + 1, mid + 5))
    assert suffix_of_cut(psm, len(psm), 3) == [EOS] * 3           # plain text after the example
    assert suffix_of_cut([30, 31, FIM_MIDDLE, 5, 6], 5, 3) == [EOS] * 3   # header cut off by the row start
    rng = np.random.default_rng(0)
    cuts = np.concatenate([choose_cuts(psm, 2, 3, 0.5, rng) for _ in range(400)])
    share = in_middle(psm)[cuts].mean()
    assert 0.4 < share < 0.6, share                            # 4 of 18 positions, but half of the cuts


def test_cuts_inside_a_continuation_are_slices_of_it(tokens, tmp_path):
    """A sample cut `depth` tokens into a continuation is that continuation seen from later on:
    its context ends with the verifier's first `depth` tokens, its tokens and hidden states are
    the same ones shifted (distilled once, never recomputed)."""
    from training import distill
    from training.tokenizer import EOS
    train(cfg(tokens, tmp_path / "v.pt", max_steps=20), log=lambda *a: None)
    W, K, m = 8, 6, 4
    out = str(tmp_path / "d.npz")
    distill.make(str(tmp_path / "v.pt"), tokens, out, n=3 * 2 * m, ctx_len=16, window=W, K=K, batch=2 * m,
                 row_len=64, cuts_per_row=m, threads=1, self_span=5, self_cuts=2, log=lambda *a: None)
    z = np.load(out)
    B = 2 * m                                          # one batch: continuations 0..B-1, then two deeper cuts of each
    assert len(z["ctx"]) == 3 * B and (z["depth"][:B] == 0).all() and (z["depth"][B:] >= 0).all()
    assert (z["depth"][B:] > 0).any()
    for i in range(B, 3 * B):
        j, o = i % B, int(z["depth"][i])
        base = z["gen"][j]
        if o == 0:
            continue
        assert EOS not in base[:o]                     # never cut past the end of the text
        assert (z["ctx"][i][-o:] == base[:o]).all() and (z["ctx"][i][:-o] == z["ctx"][j][o:]).all()
        assert (z["gen"][i][:K + 1 - o] == base[o:]).all()
        assert np.allclose(z["hid"][i][:W + K - o].astype(np.float32), z["hid"][j][o:].astype(np.float32))
        assert (z["suf"][i] == z["suf"][j]).all()


def test_targets_after_the_end_of_the_text_are_ignored(tmp_path):
    from training.train_drafter import DistillData
    from training.tokenizer import EOS
    K, W, Lc = 6, 4, 5
    gen = np.array([[10, 11, EOS, EOS, EOS, EOS, EOS], [10, 11, 12, 13, 14, 15, 16]], dtype=np.int32)
    ctx = np.full((2, Lc), 20, dtype=np.int32)
    np.savez(tmp_path / "d.npz", ctx=ctx, gen=gen, window=W, K=K)
    d = DistillData(str(tmp_path / "d.npz"), val_frac=0.5)
    idx = np.array([0, 1])
    _, _, tgt, _ = d.batch(idx, K, K, 4, hidden=False, eos_id=EOS)               # stage I: targets g1..g6
    assert tgt[0].tolist() == [11, EOS, -1, -1, -1, -1]                         # the end itself is drafted
    assert tgt[1].tolist() == [11, 12, 13, 14, 15, 16]
    _, _, tgt, _ = d.batch(idx, K, 3, 4, hidden=False, eos_id=EOS)               # stage II, R=3: g4..g6
    assert tgt[0].tolist() == [-1, -1, -1] and tgt[1].tolist() == [14, 15, 16]
    _, _, tgt, _ = d.batch(idx, K, K, 4, hidden=False)                          # eos_id -1: nothing ignored
    assert tgt[0].tolist() == [11, EOS, EOS, EOS, EOS, EOS]


def test_drafter_reads_several_verifier_blocks_from_distillation_to_export(tokens, tmp_path):
    """taps: the hidden states are the outputs of several verifier blocks, concatenated (EAGLE-3,
    DFlash); the shared-prefix decoder, a plain forward pass and the exported graph agree on them."""
    from training import distill, export
    from training.train_drafter import DistillData, DrafterTrainConfig, train as train_drafter
    gpt, _ = train(cfg(tokens, tmp_path / "v.pt", max_steps=20), log=lambda *a: None)
    taps = (1, gpt.cfg.n_layer)
    C = gpt.cfg.n_embd
    g64 = gpt.double()
    b = data.Batcher(data.TokenData(tokens, "train"), 128, seed=3)
    rows = torch.tensor([b.row()[:80]])
    toks, hid = greedy_from_cuts(g64, rows, torch.tensor([[50, 80]]), 5, 8, taps)
    assert hid.shape == (2, 8 + 4, 2 * C)
    for i, c in enumerate((50, 80)):
        seq = torch.cat([rows[0, :c], toks[i, :4]])
        _, _, h = g64(seq[None], return_hidden=True, taps=taps)
        assert torch.allclose(hid[i], h[0, c - 8:c + 4], atol=1e-9), i
        _, _, top = g64(seq[None], return_hidden=True)
        assert torch.allclose(h[0, :, C:], top[0], atol=1e-9)       # the top tap is the untapped state
    gpt = gpt.float()
    d = str(tmp_path / "d.npz")
    distill.make(str(tmp_path / "v.pt"), tokens, d, n=64, ctx_len=16, window=8, K=6, batch=32, row_len=64,
                 cuts_per_row=8, threads=1, taps=taps, log=lambda *a: None)
    drafter, _ = train_drafter(DrafterTrainConfig(verifier=str(tmp_path / "v.pt"), distill=d, out=str(tmp_path / "dr.pt"),
                                                  k=6, window=8, n_layer=1, hidden=True, kv_context=True, taps=True,
                                                  max_steps=3, minutes=0, threads=1), log=lambda *a: None)
    assert drafter.cfg.hidden_size == 2 * C and tuple(drafter.cfg.hidden_layers) == taps
    top = DistillData(d, 0.05, top_only=True)                         # the A/B's other arm: the final state alone
    assert top.taps == () and np.array_equal(top.hid, np.load(d)["hid"][..., C:])
    folder = tmp_path / "model"
    rep = export.write_folder(str(folder), gpt, os.path.join(os.path.dirname(tokens), "tok.json"), drafter,
                              log=lambda *a: None)
    assert rep["parity"]["verifier"]["max_abs_hidden_diff"] < 1e-4
    assert rep["parity"]["drafter"]["max_abs_logit_diff"] < 1e-3
    import json
    deer = json.load(open(folder / "deer.json"))
    assert deer["verifier"]["hidden_states"] == {"output": "hidden_states", "size": 2 * C, "layers": list(taps)}


def test_config_flags_round_trip_every_field_including_a_default_true_bool_turned_off():
    from training.cli import parse_config, to_flags
    from training.hf_drafter import HFDrafterConfig
    from training.train_drafter import DrafterTrainConfig
    for cfg in (DrafterTrainConfig(kv_context=True, anchor=True, decay=2.0, minutes=0.5, out="d.pt"),
                HFDrafterConfig(anchor=False, decay=0.0, minutes1=0.25, texts="a/**/*.ts")):
        flags = to_flags(cfg)
        assert parse_config(type(cfg), flags) == cfg, flags
    assert "--no-anchor" in to_flags(HFDrafterConfig(anchor=False))


def test_prefetcher_gives_the_batcher_sequence_at_the_asked_length(tokens):
    """The GPU trainer's batch thread: the same batches as the Batcher itself, and a new row length
    never returns a batch built for the old one."""
    from training.train import Prefetcher
    plain = data.Batcher(data.TokenData(tokens, "train"), 32, seed=3)
    ahead = Prefetcher(data.Batcher(data.TokenData(tokens, "train"), 32, seed=3))
    for _ in range(4):
        x, y = ahead.get(4)
        xr, yr = plain.get(4)
        assert torch.equal(x, xr) and torch.equal(y, yr)
    ahead.T = 64
    for _ in range(3):
        x, y = ahead.get(2)
        assert x.shape == (2, 64) and torch.equal(x[:, 1:], y[:, :-1])


def test_online_distillation_replaces_the_oldest_samples_and_keeps_the_held_out_ones(tokens, tmp_path):
    """The drafter's fresh-data buffer: the held-out part never changes; each refresh writes the
    source's next chunk over the oldest training samples, in the order the source makes them."""
    from training.distill import ContinuationSource
    from training.export import load_checkpoint
    from training.train_drafter import OnlineDistillData, DrafterTrainConfig, train as train_drafter
    v_path = tmp_path / "v.pt"
    train(cfg(tokens, v_path, max_steps=2), log=lambda *a: None)
    gpt = load_checkpoint(str(v_path))[0]

    def source(split, seed):
        return ContinuationSource(gpt, tokens, ctx_len=32, window=16, K=8, batch=8, seed=seed, split=split,
                                  row_len=64, cuts_per_row=4, self_span=4, self_cuts=1)
    fresh, calls = source("train", 1), []
    take = fresh.next
    fresh.next = lambda: calls.append(1) or take()
    data = OnlineDistillData(fresh, source("val", 2), capacity=100, val_frac=0.1, log=lambda *a: None)
    twin = source("train", 1)                    # the same stream, to know what each refresh must write
    chunks = [twin.next() for _ in range(len(calls) + 3)]
    assert data.chunk == 16 and len(data.val_idx) == 10 and data.made >= 90
    val = {k: getattr(data, k)[data.val_idx].copy() for k in ("ctx", "gen", "hid")}
    for _ in range(3):
        at = data.cursor
        data.refresh()
        expect = chunks[len(calls) - 1]
        n = min(data.chunk, len(data.ctx) - at)
        assert np.array_equal(data.ctx[at:at + n], expect["ctx"][:n]) and np.array_equal(data.hid[at:at + n], expect["hid"][:n])
        for k, a in val.items():
            assert np.array_equal(getattr(data, k)[data.val_idx], a), k
    # Started before the buffer is full: it trains on what is made and grows one chunk per refresh.
    growing = OnlineDistillData(source("train", 3), source("val", 4), capacity=100, val_frac=0.1, log=lambda *a: None,
                                initial=30)
    assert 30 <= growing.made < 30 + growing.chunk and len(growing.train_idx) == growing.made
    made0, sizes = growing.made, []
    for _ in range(8):
        growing.refresh()
        sizes.append(len(growing.train_idx))
    assert sizes[:3] == [made0 + (i + 1) * growing.chunk for i in range(3)] and sizes[-1] == 90, sizes
    assert growing.gen[growing.train_idx].any(axis=1).all(), "every training slot in use holds a sample"
    out = tmp_path / "d.pt"
    _, res = train_drafter(DrafterTrainConfig(verifier=str(v_path), out=str(out), k=8, window=16, n_layer=1, hidden=True,
                                              kv_context=True, anchor=True, batch_size=8, max_steps=20, minutes=5,
                                              online=64, online_data=tokens, online_reuse=1.0, online_batch=8,
                                              online_row_len=64, online_cuts_per_row=4, online_self_cuts=1,
                                              threads=1, log_every=10**9), log=lambda *a: None)
    assert res["steps"] == 20 and res["online_samples"] >= 64 + 20 * 8 - 16, "fresh samples keep coming while it trains"


def test_teacher_forced_samples_are_the_verifiers_greedy_continuations_as_far_as_the_row_agrees(tokens, tmp_path):
    """One prefill per row stands in for decoding: each sample's known tokens and hidden rows equal the
    shared-prefix decoder's from the same cut; from the first token the row does not confirm, the
    sample holds <|endoftext|> (an ignored target) and the row really departed from the greedy text there."""
    from training.distill import TeacherForcedSource
    from training.tokenizer import EOS
    gpt, _ = train(cfg(tokens, tmp_path / "v.pt", max_steps=150), log=lambda *a: None)
    gpt = gpt.double()
    W, K, Lc = 8, 6, 16
    src = TeacherForcedSource(gpt, tokens, ctx_len=Lc, window=W, K=K, batch=64, seed=0, row_len=100, cuts_per_row=16)
    rows, draw = [], src.b.row
    src.b.row = lambda: rows.append(draw()[:100]) or rows[-1]
    chunk = src.next()
    assert len(chunk["ctx"]) == 64 and chunk["hid"].shape == (64, W + K, gpt.cfg.n_embd)
    deepest, checked = 0, 0
    for ctx, gen, hid in zip(chunk["ctx"], chunk["gen"], chunk["hid"]):
        cuts = [(r, c) for r, row in enumerate(rows) for c in range(Lc, len(row) + 1) if list(row[c - Lc:c]) == list(ctx)]
        assert cuts, "the context is a window of a row"
        if len(cuts) > 1:
            continue                                  # a repeated window: which cut it was is not known
        (r, c), checked = cuts[0], checked + 1
        toks, ref = greedy_from_cuts(gpt, torch.tensor([rows[r]]), torch.tensor([[c]]), K + 1, W)
        toks = toks[0].numpy()
        known = int(np.argmax(gen == EOS)) if (gen == EOS).any() else K + 1
        assert known >= 2, "a cut where even g1 is unknown teaches nothing"
        assert np.array_equal(gen[:known], toks[:known])
        if known <= K:
            assert rows[r][c + known - 1] != toks[known - 1] and (gen[known:] == EOS).all()
        assert np.allclose(hid[:W + known - 1], ref[0, :W + known - 1].half().numpy(), atol=1e-3)
        deepest = max(deepest, known)
    assert checked >= 48 and deepest >= 3, (checked, deepest)
