"""The KV-cache path equals the training path; the drafter's shapes follow the contract."""
import numpy as np
import pytest
import torch

from training.model import GPT, GPTConfig, Drafter, DrafterConfig


def tiny_gpt():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=97, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, ffn_hidden=64)).eval()


@torch.no_grad()
def test_cached_equals_full():
    m = tiny_gpt()
    idx = torch.randint(0, 97, (2, 11))
    full, _ = m(idx)
    cfg = m.cfg
    past = [(torch.zeros(2, cfg.n_kv_head, 0, cfg.head_dim),) * 2 for _ in range(cfg.n_layer)]
    outs, P = [], 0
    for a, b in [(0, 4), (4, 5), (5, 11)]:  # past 0, then one token, then a block
        q = b - a
        lg, past, _ = m.forward_cached(idx[:, a:b], torch.ones(2, P + q, dtype=torch.long),
                                       torch.arange(P, P + q)[None].expand(2, q), past)
        outs.append(lg)
        P += q
    assert torch.allclose(torch.cat(outs, 1), full, atol=1e-5)


@torch.no_grad()
def test_greedy_generation_matches_argmax_rollout():
    m = tiny_gpt()
    idx = torch.randint(0, 97, (1, 5))
    g = m.generate_greedy(idx, 6)[0].tolist()
    seq = idx[0].tolist()
    for _ in range(6):
        seq.append(int(m(torch.tensor([seq]))[0][0, -1].argmax()))
    assert g == seq[5:]


@torch.no_grad()
def test_drafter_shapes_and_hidden():
    torch.manual_seed(0)
    d = Drafter(DrafterConfig(vocab_size=97, n_layer=1, n_head=4, n_embd=32, ffn_hidden=64, block_size=8,
                              context_window=16, hidden_size=32, mask_id=4)).eval()
    ids = torch.cat([torch.randint(7, 97, (2, 10)), torch.full((2, 8), 4)], 1)
    h = torch.randn(2, 10, 32)
    assert d(ids, h, k=8).shape == (2, 8, 97)
    assert d(ids[:, :15], h, k=5).shape == (2, 5, 97)
    # the hidden states do condition the output
    assert not torch.allclose(d(ids, h, k=8), d(ids, torch.zeros_like(h), k=8))


@torch.no_grad()
def test_drafter_starts_from_verifier_blocks():
    from training.model import rope_cos_sin
    v = GPT(GPTConfig(vocab_size=97, n_layer=3, n_head=4, n_kv_head=2, n_embd=32, ffn_hidden=64)).eval()
    d = Drafter(DrafterConfig(vocab_size=97, n_layer=2, n_head=4, n_embd=32, ffn_hidden=64, block_size=4)).eval()
    d.init_from_verifier(v)
    x = torch.randn(1, 6, 32)
    cos, sin = rope_cos_sin(torch.arange(6)[None], 8, 10000.0)
    # with a causal mask, a copied block (GQA heads expanded) computes what the verifier's does
    assert torch.allclose(v.layers[1](x, cos, sin)[0], d.layers[1](x, cos, sin)[0], atol=1e-5)


@torch.no_grad()
def test_tree_mask_scores_each_node_as_its_own_path():
    from training.export import ancestor_mask
    m = tiny_gpt()
    cfg = m.cfg
    prefix = torch.randint(0, 97, (1, 6))
    parents = [-1, 0, 0, 1, 2, 2, 4]
    nodes = torch.randint(0, 97, (1, len(parents)))
    _, past, _ = m.forward_cached(prefix, torch.ones(1, 6, dtype=torch.long), torch.arange(6)[None],
                                  [(torch.zeros(1, cfg.n_kv_head, 0, cfg.head_dim),) * 2 for _ in range(cfg.n_layer)])
    mask = torch.from_numpy(ancestor_mask(parents))[None]
    q = len(parents)
    lg, presents, _ = m.forward_cached(nodes, torch.ones(1, 6 + q, dtype=torch.long), 6 + mask.sum(-1) - 1, past, mask)
    for i in range(q):
        path = torch.cat([prefix[0], nodes[0][mask[0, i] > 0]])[None]
        assert torch.allclose(lg[0, i], m(path)[0][0, -1], atol=1e-5)
    # a chain given as a tree is the plain causal pass
    chain = torch.tril(torch.ones(1, q, q, dtype=torch.long))
    pos = torch.arange(6, 6 + q)[None]
    am = torch.ones(1, 6 + q, dtype=torch.long)
    assert torch.allclose(m.forward_cached(nodes, am, pos, past, chain)[0], m.forward_cached(nodes, am, pos, past)[0], atol=1e-6)


@torch.no_grad()
def test_fim_drafter_sees_the_first_suffix_tokens_only_and_exports(tmp_path):
    from training import export
    torch.manual_seed(0)
    d = Drafter(DrafterConfig(vocab_size=97, n_layer=1, n_head=4, n_embd=32, ffn_hidden=64, block_size=6,
                              context_window=16, hidden_size=32, mask_id=4, suffix_window=4)).eval()
    torch.nn.init.normal_(d.suffix_embed)
    ctx = torch.randint(7, 97, (1, 10)).tolist()[0]
    ids = torch.tensor([ctx + [4] * 6])
    h = torch.randn(1, 10, 32)
    suf = torch.randint(7, 97, (1, 9))
    out = d(ids, h, k=6, suffix_ids=suf)
    assert out.shape == (1, 6, 97)
    assert not torch.allclose(out, d(ids, h, k=6, suffix_ids=torch.randint(7, 97, (1, 9))))   # it conditions
    tail = suf.clone()
    tail[:, 4:] = 5
    assert torch.allclose(out, d(ids, h, k=6, suffix_ids=tail))                               # only the first 4
    path = str(tmp_path / "drafter.onnx")
    export.export_drafter(d, path)
    rep = export.check_drafter(d, path, ctx, h)
    assert rep["max_abs_logit_diff"] < 1e-4, rep


@torch.no_grad()
def test_reduced_head_scores_its_tokens_exactly_and_nothing_else(tmp_path):
    from training import export
    torch.manual_seed(0)
    cfg = dict(vocab_size=97, n_layer=1, n_head=4, n_embd=32, ffn_hidden=64, block_size=6, context_window=16, mask_id=4)
    full = Drafter(DrafterConfig(**cfg)).eval()
    head = Drafter(DrafterConfig(**cfg, head_tokens=20)).eval()
    head.load_state_dict({**full.state_dict(), "head_ids": torch.arange(7, 97, 4)[:20]}, strict=True)
    ids = torch.tensor([torch.randint(7, 97, (10,)).tolist() + [4] * 6])
    a, b = full(ids, k=6), head(ids, k=6)
    inside = torch.zeros(97, dtype=torch.bool)
    inside[head.head_ids] = True
    assert torch.allclose(a[..., inside], b[..., inside], atol=1e-5)
    assert (b[..., ~inside] == -1e9).all()
    assert torch.equal(head(ids, k=6, full=False), b[..., head.head_ids])
    assert head.head_targets(torch.tensor([7, 8, 11])).tolist() == [0, -1, 1]
    path = str(tmp_path / "drafter.onnx")
    export.export_drafter(head, path)
    assert export.check_drafter(head, path, ids[0, :10].tolist())["max_abs_logit_diff"] < 1e-4
    sess = export._session(path)                     # another block size through the same graph
    short = torch.tensor([ids[0, :10].tolist() + [4] * 3])
    logits, head_ids = sess.run(None, {"input_ids": short.numpy()})   # only the head's scores, and their ids
    assert logits.shape == (1, 3, 20) and head_ids.tolist() == head.head_ids.tolist()
    assert np.allclose(logits, head(short, k=3, full=False).numpy(), atol=1e-4)
    assert not any(n.op_type.startswith("Scatter") for n in __import__("onnx").load(path).graph.node)


def twin_drafters(cfg, n_layer, flag):
    """Two drafters with the same weights, `flag` off and on."""
    off, on = (Drafter(DrafterConfig(**cfg, n_layer=n_layer, **{flag: v})).eval() for v in (False, True))
    on.load_state_dict(off.state_dict())
    return off, on


def assert_exports_exactly(model, ids, h, c, tmp_path):
    """The ONNX drafter equals PyTorch, at its block size and at a shorter one through the same graph."""
    from training import export
    path = str(tmp_path / "drafter.onnx")
    export.export_drafter(model, path)
    assert export.check_drafter(model, path, ids[0, :c].tolist(), h)["max_abs_logit_diff"] < 1e-4
    short = torch.tensor([ids[0, :c].tolist() + [4] * 3])
    got = export._session(path).run(None, {"input_ids": short.numpy(), "hidden_states": h.numpy()})[0]
    assert np.allclose(got, model(short, h, k=3).numpy(), atol=1e-4)


@torch.no_grad()
def test_kv_context_drafter_is_the_full_drafter_in_one_layer_and_exports(tmp_path):
    torch.manual_seed(0)
    cfg = dict(vocab_size=97, n_head=4, n_embd=32, ffn_hidden=64, block_size=6, context_window=16, hidden_size=32,
               mask_id=4)
    ids = torch.tensor([torch.randint(7, 97, (10,)).tolist() + [4] * 6])
    h = torch.randn(1, 10, 32)
    full, kv = twin_drafters(cfg, 1, "kv_context")
    # one layer: the block sees the same context keys/values either way; the context rows' own updates are unused
    assert torch.allclose(full(ids, h, k=6), kv(ids, h, k=6), atol=1e-5)
    full2, kv2 = twin_drafters(cfg, 2, "kv_context")
    out = kv2(ids, h, k=6)
    assert not torch.allclose(full2(ids, h, k=6), out, atol=1e-3)    # deeper, the context is not re-encoded
    other = ids.clone()
    other[0, 3] = 50
    assert not torch.allclose(out, kv2(other, h, k=6))                # it still reads the context
    assert_exports_exactly(kv2, ids, h, 10, tmp_path)


@torch.no_grad()
def test_anchored_kv_drafter_reads_the_bonus_token_through_the_layers_and_exports(tmp_path):
    torch.manual_seed(0)
    cfg = dict(vocab_size=97, n_head=4, n_embd=32, ffn_hidden=64, block_size=6, context_window=16, hidden_size=32,
               mask_id=4, kv_context=True)
    ids = torch.tensor([torch.randint(7, 97, (10,)).tolist() + [4] * 6])
    h = torch.randn(1, 10, 32)
    h[:, -1] = 0.0                                                    # the pending bonus token, as the engine sends it
    kv, anchored = twin_drafters(cfg, 1, "anchor")
    # one layer: the block reads the same keys and values either way (the anchor's own update is unused)
    assert torch.allclose(kv(ids, h, k=6), anchored(ids, h, k=6), atol=1e-5)
    kv2, anchored2 = twin_drafters(cfg, 2, "anchor")
    out = anchored2(ids, h, k=6)
    assert (kv2(ids, h, k=6) - out).abs().max() > 1e-4                # deeper, the block reads the anchor's update
                                                                      # (small at init: residual outputs start small)
    assert_exports_exactly(anchored2, ids, h, 10, tmp_path)
    with pytest.raises(AssertionError, match="kv_context"):          # without kv_context every position is a query
        Drafter(DrafterConfig(**{**cfg, "kv_context": False}, n_layer=1, anchor=True))
