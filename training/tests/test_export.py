"""Weight-only int8 export (training.export.quantize) on the committed fp32 fixture."""
import json
import os

import numpy as np
import onnx
import pytest

from training import export
from training.model import GPTConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(ROOT, "test", "fixtures", "tiny-model")
INT8_FIXTURE = os.path.join(ROOT, "test", "fixtures", "samples", "tiny-model-int8")


def fixture_cfg(d=FIXTURE):
    c = json.load(open(os.path.join(d, "config.json")))
    return GPTConfig(vocab_size=c["vocab_size"], n_layer=c["num_hidden_layers"], n_head=c["num_attention_heads"],
                     n_kv_head=c["num_key_value_heads"], n_embd=c["hidden_size"])


def prompt_ids():
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(FIXTURE, "tokenizer.json"))
    return tok.encode("def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fib").ids


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    out = tmp_path_factory.mktemp("int8")
    report = export.quantize_folder(FIXTURE, str(out))
    return str(out), report


def test_verifier_int8_weights_float_activations_drafters_int8_compute(quantized):
    out, report = quantized
    for f in ("onnx/model.onnx", "onnx/drafter.onnx", "onnx/ar.onnx"):
        m = onnx.load(os.path.join(out, f))
        ops = {n.op_type for n in m.graph.node}
        assert not ops & {"DynamicQuantizeLinear", "MatMulInteger", "QuantizeLinear", "MatMulNBits"}, f
        floats = [t for t in m.graph.initializer if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) == 2]
        assert floats == [], f"{f}: float weight matrices left: {[t.name for t in floats]}"
        # the LM head shares the embedding's int8 table: one vocab-sized table, not two
        assert report[f]["tied"] == 1
        vocab_tables = [t for t in m.graph.initializer if t.data_type == onnx.TensorProto.INT8 and 1024 in t.dims]
        assert len(vocab_tables) == 1, f
        assert os.path.getsize(os.path.join(out, f)) < 0.35 * os.path.getsize(os.path.join(FIXTURE, f))
        int8_compute = [n for n in m.graph.node if n.op_type == "DynamicQuantizeMatMul"]
        if f == "onnx/model.onnx":  # exact: no activation is quantized
            assert export.is_weight_only_int8(os.path.join(out, f)) and int8_compute == []
        else:  # a draft model: every weight product in int8 but the tied head's
            assert not export.is_weight_only_int8(os.path.join(out, f))
            float_products = [n for n in m.graph.node if n.op_type == "MatMul" and n.input[1].endswith(".transposed")]
            assert len(float_products) == 1 and len(int8_compute) == report[f]["int8_activations"] >= 5, f


def drafter_logits(path, ctx, k, mask_id=4):
    ids = np.array([list(ctx) + [mask_id] * k], np.int64)
    return export._session(path).run(["logits"], {"input_ids": ids})[0][0]


def test_int8_compute_drafter_drafts_nearly_what_fp32_drafts(quantized):
    """Its proposals may differ (the verifier checks them); they should rarely."""
    out, _ = quantized
    ids = prompt_ids()
    a = drafter_logits(os.path.join(FIXTURE, "onnx/drafter.onnx"), ids[:20], 16)
    b = drafter_logits(os.path.join(out, "onnx/drafter.onnx"), ids[:20], 16)
    assert (a.argmax(-1) == b.argmax(-1)).mean() >= 0.8
    assert not np.array_equal(a, b)  # it did compute in int8


def test_logits_do_not_depend_on_the_other_tokens_of_a_pass(quantized, tmp_path):
    out, _ = quantized
    cfg, ids = fixture_cfg(), prompt_ids()
    int8 = export.multi_vs_single_diff(export._session(os.path.join(out, "onnx/model.onnx")), cfg, ids)
    fp32 = export.multi_vs_single_diff(export._session(os.path.join(FIXTURE, "onnx/model.onnx")), cfg, ids)
    assert int8 < 1e-4 and fp32 < 1e-4, (int8, fp32)
    # per-tensor dynamic quantization, which this replaces, fails the same check
    from onnxruntime.quantization import quantize_dynamic, QuantType
    dyn = str(tmp_path / "dynamic.onnx")
    quantize_dynamic(os.path.join(FIXTURE, "onnx/model.onnx"), dyn, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    assert export.multi_vs_single_diff(export._session(dyn), cfg, ids) > 1e-3
    assert not export.is_weight_only_int8(dyn)


def test_int8_close_to_fp32(quantized):
    out, _ = quantized
    cfg, ids = fixture_cfg(), prompt_ids()
    rows = [ids]
    fp32 = export.onnx_loss(os.path.join(FIXTURE, "onnx/model.onnx"), cfg, rows)
    int8 = export.onnx_loss(os.path.join(out, "onnx/model.onnx"), cfg, rows)
    assert abs(int8 - fp32) < 0.02, (fp32, int8)
    # teacher-forced next-token choices (greedy decoding itself forks at this toy model's many near-ties)
    L, nkv, hs = cfg.n_layer, cfg.n_kv_head, cfg.head_dim
    top1 = []
    for path in (os.path.join(FIXTURE, "onnx/model.onnx"), os.path.join(out, "onnx/model.onnx")):
        past = [np.zeros((1, nkv, 0, hs), dtype=np.float32) for _ in range(2 * L)]
        logits, _, _ = export.ort_verifier_step(export._session(path), L, nkv, hs, np.array([ids]), past, 0)
        top1.append(logits[0].argmax(-1))
    assert (top1[0] == top1[1]).mean() >= 0.9


def test_committed_int8_fixture_is_the_quantized_fp32_fixture(quantized):
    out, _ = quantized
    for f in ("onnx/model.onnx", "onnx/drafter.onnx", "onnx/ar.onnx"):
        assert open(os.path.join(INT8_FIXTURE, f), "rb").read() == open(os.path.join(out, f), "rb").read(), \
            f"{f}: rebuild with python -m training.make_fixture --int8-only"
    for f in ("tokenizer.json", "config.json", "deer.json"):
        assert open(os.path.join(INT8_FIXTURE, f)).read() == open(os.path.join(FIXTURE, f)).read()


def test_static_shapes_keep_every_output(tmp_path):
    """The shape arithmetic made constant (training/static_shapes.py, run by write_folder) leaves a
    smaller graph with the same logits and caches at lengths it was not probed or checked at, and
    with a branching tree mask."""
    from training.static_shapes import make_static
    import onnxruntime as ort
    src = os.path.join(FIXTURE, "onnx/model.onnx")
    dst = str(tmp_path / "static.onnx")
    report = make_static(src, dst)
    assert report["nodes_after"] < report["nodes_before"] - 50, report
    cfg = fixture_cfg()
    L, nkv, hs = cfg.n_layer, cfg.n_kv_head, cfg.head_dim
    rng = np.random.default_rng(3)
    sessions = [export._session(p) for p in (src, dst)]
    for q, past_len in ((2, 0), (9, 30), (1, 61)):
        ids = rng.integers(7, cfg.vocab_size, (1, q)).astype(np.int64)
        past = [rng.standard_normal((1, nkv, past_len, hs)).astype(np.float32) for _ in range(2 * L)]
        a, b = (export.ort_verifier_step(s, L, nkv, hs, ids, past, past_len) for s in sessions)
        assert np.abs(a[0] - b[0]).max() < 1e-5 and all(np.array_equal(x, y) for x, y in zip(a[1], b[1])), (q, past_len)
    parents = (-1, 0, 0, 1, 1, 2, 3)
    feed = {"input_ids": rng.integers(7, cfg.vocab_size, (1, len(parents))).astype(np.int64),
            "attention_mask": np.ones((1, 12 + len(parents)), np.int64),
            "position_ids": np.array([[12 + d for d in (0, 1, 1, 2, 2, 2, 3)]], np.int64),
            "tree_mask": export.ancestor_mask(parents)[None].astype(np.int64)}
    for i in range(L):
        for kv in ("key", "value"):
            feed[f"past_key_values.{i}.{kv}"] = rng.standard_normal((1, nkv, 12, hs)).astype(np.float32)
    a, b = (s.run(["logits"], feed)[0] for s in sessions)
    assert np.abs(a - b).max() < 1e-5


def test_static_shapes_drafter_keeps_its_outputs(tmp_path):
    """A drafter's shape arithmetic made constant: the same logits for context and block lengths
    it was not checked at."""
    from training.static_shapes import make_static, CHECK_SHAPES
    src = os.path.join(FIXTURE, "onnx/drafter.onnx")
    dst = str(tmp_path / "static.onnx")
    report = make_static(src, dst, mask_id=4)
    assert report["nodes_after"] < report["nodes_before"] - 20, report
    ids = prompt_ids()
    for c, k in ((5, 2), (29, 16), (1, 7)):
        assert (k, c) not in CHECK_SHAPES
        a, b = (drafter_logits(p, ids[:c], k) for p in (src, dst))
        assert a.shape == (k, 1024) and np.abs(a - b).max() < 1e-5, (c, k)


def test_retrofit_int8_drafters_of_a_weight_only_folder(tmp_path):
    """An older folder (drafters weight-only int8, one with a head_ids output): the retrofit gives
    its drafters int8 compute, keeps head_ids and the verifier, and drafts nearly the same."""
    from training import retrofit_int8
    old = tmp_path / "old"
    import shutil
    shutil.copytree(FIXTURE, old)
    reduced = os.path.join(ROOT, "test", "fixtures", "samples", "reduced-head-drafter.onnx")
    export.quantize(reduced, str(old / "onnx/drafter.onnx"))
    export.quantize(os.path.join(FIXTURE, "onnx/ar.onnx"), str(old / "onnx/ar.onnx"))
    before = export._session(str(old / "onnx/drafter.onnx"))
    ids = np.array([prompt_ids()[:20] + [4] * 16], np.int64)
    logits0, head0 = before.run(["logits", "head_ids"], {"input_ids": ids})
    verifier = open(old / "onnx/model.onnx", "rb").read()
    report = retrofit_int8.retrofit(str(old), log=lambda *a: None)
    assert set(report) == {"deer", "ar"} and report["deer"]["quantize"]["int8_activations"] >= 5
    after = export._session(str(old / "onnx/drafter.onnx"))
    logits1, head1 = after.run(["logits", "head_ids"], {"input_ids": ids})
    assert np.array_equal(head0, head1)
    assert (logits0.argmax(-1) == logits1.argmax(-1)).mean() >= 0.8
    assert open(old / "onnx/model.onnx", "rb").read() == verifier
    assert retrofit_int8.retrofit(str(old), log=lambda *a: None) == {}  # already done: left alone


def _int8_graphs(tmp_path):
    """A small random verifier exported with tree_mask: weight-only int8 and int8 compute."""
    import torch
    from training.model import GPT
    from training.static_shapes import make_static
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=512, n_layer=2, n_head=4, n_kv_head=2, n_embd=128, ffn_hidden=256)
    fp32, weight_only, int8 = (str(tmp_path / f) for f in ("fp32.onnx", "w8.onnx", "i8.onnx"))
    export.export_verifier(GPT(cfg).eval(), fp32, with_tree=True, value_normalised=True)
    make_static(fp32, fp32)
    export.quantize(fp32, weight_only)
    return cfg, export.int8_compute_verifier(weight_only, int8), weight_only, int8


def test_int8_compute_verifier_is_exact_in_passes_of_two_tokens_or_more_and_in_trees(tmp_path):
    """What speculative decoding relies on, bit for bit: a chain's logits do not depend on how it
    is split into passes of 2+ tokens, and a tree node's logits are those of a chain pass over its
    path, though masked siblings sit between its ancestors (with a Softmax attention they are not:
    ~3e-7 in fp32, which int8 activations can turn into ~0.2)."""
    cfg, report, weight_only, int8 = _int8_graphs(tmp_path)
    m = onnx.load(int8)
    assert report == {"int8_compute": 2 * 7 + 1, "embedding": 1}
    weights = {t.name for t in m.graph.initializer}
    assert not [n for n in m.graph.node if n.op_type == "MatMul" and set(n.input) & weights]  # no fp32 weight product
    L, nkv, hs = cfg.n_layer, cfg.n_kv_head, cfg.head_dim
    ids = np.random.default_rng(0).integers(7, cfg.vocab_size, 60).tolist()
    empty = [np.zeros((1, nkv, 0, hs), np.float32) for _ in range(2 * L)]
    chain = ids[45:51]
    tree = [chain[0], 11, chain[1], 12, chain[2], 13, chain[3], 14, chain[4], chain[5]]  # a sibling beside 4 nodes
    parents = [-1, -1, 0, 0, 2, 2, 4, 4, 6, 8]
    depth = []
    for p in parents:
        depth.append(0 if p < 0 else depth[p] + 1)
    for path in (weight_only, int8):
        sess = export._session(path)
        _, cache, _ = export.ort_verifier_step(sess, L, nkv, hs, np.array([ids[:45]]), empty, 0)
        whole = export.ort_verifier_step(sess, L, nkv, hs, np.array([ids[45:]]), cache, 45)[0][0]
        for split in ((2, 3, 4, 6), (7, 8), (5, 2, 2, 6)):
            past, at, parts = cache, 45, []
            for n in split:
                logits, past, _ = export.ort_verifier_step(sess, L, nkv, hs, np.array([ids[at:at + n]]), past, at)
                parts.append(logits[0])
                at += n
            assert np.array_equal(np.concatenate(parts), whole), (path, split)
        feed = {"input_ids": np.array([tree], np.int64), "attention_mask": np.ones((1, 45 + len(tree)), np.int64),
                "tree_mask": export.ancestor_mask(parents)[None], "position_ids": np.array([[45 + d for d in depth]], np.int64)}
        for i in range(L):
            feed[f"past_key_values.{i}.key"], feed[f"past_key_values.{i}.value"] = cache[2 * i], cache[2 * i + 1]
        assert np.array_equal(sess.run(["logits"], feed)[0][0][[0, 2, 4, 6, 8, 9]], whole[:6]), path


def test_int8_compute_refuses_a_softmax_tree_graph(tmp_path):
    with pytest.raises(ValueError, match="Softmax"):
        export.int8_compute_verifier(os.path.join(INT8_FIXTURE, "onnx/model.onnx"), str(tmp_path / "x.onnx"))


def test_models_read_back_from_their_onnx_files(tmp_path):
    """The shipped drafter exists only as ONNX; training continues from the weights read back from it:
    exact from fp32 files, within int8 rounding from quantized ones (embedding rows, int8 columns)."""
    import torch
    from training.model import Drafter, DrafterConfig
    from training.onnx_weights import drafter_from_onnx, gpt_from_onnx
    from training.hf import gpt_config
    from training.static_shapes import make_static
    torch.manual_seed(0)
    cfg = DrafterConfig(vocab_size=512, n_layer=2, n_head=4, n_embd=64, ffn_hidden=96, block_size=8, context_window=16,
                        hidden_size=64, head_tokens=128, kv_context=True, anchor=True)
    drafter = Drafter(cfg)
    drafter.head_ids.copy_(torch.randperm(512)[:128].sort().values)
    with torch.no_grad():
        for name, p in drafter.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)              # distinct norms: the export would merge equal initializers
    fp32, q = str(tmp_path / "d.onnx"), str(tmp_path / "dq.onnx")
    export.export_drafter(drafter, fp32)
    make_static(fp32, fp32, cfg.mask_id)
    export.quantize(fp32, q, int8_activations=True)
    verifier = gpt_from_onnx(os.path.join(FIXTURE, "onnx/model.onnx"), gpt_config(FIXTURE))
    vq = str(tmp_path / "vq.onnx")
    export.quantize(os.path.join(FIXTURE, "onnx/model.onnx"), vq)
    for original, path, read, tol in ((drafter, fp32, drafter_from_onnx, 1e-6), (drafter, q, drafter_from_onnx, 0.01),
                                      (verifier, vq, gpt_from_onnx, 0.01)):
        back = read(path, original.cfg).state_dict()
        for name, value in original.state_dict().items():
            scale = value.float().abs().max().item()
            assert (back[name].float() - value.float()).abs().max().item() <= tol * max(scale, 1), (path, name)


def test_swap_drafter_puts_these_weights_in_and_leaves_the_rest(tmp_path):
    """The fixture's drafter, read back and swapped into a copy: it drafts what the old file drafts
    (int8 compute now, so within its noise), and the verifier, tokenizer and deer.json stay as they were."""
    import filecmp
    from training.onnx_weights import drafter_from_folder
    from training.swap_drafter import swap
    drafter = drafter_from_folder(FIXTURE)
    ckpt, out = str(tmp_path / "d.pt"), str(tmp_path / "folder")
    export.save_checkpoint(ckpt, drafter)
    report = swap(ckpt, FIXTURE, out, log=lambda *a: None)
    assert report["quantize"]["int8_activations"] > 0
    for same in ("onnx/model.onnx", "onnx/ar.onnx", "tokenizer.json", "deer.json"):
        assert filecmp.cmp(os.path.join(FIXTURE, same), os.path.join(out, same), shallow=False), same
    ids = prompt_ids()
    old, new = (drafter_logits(os.path.join(d, "onnx/drafter.onnx"), ids, 16) for d in (FIXTURE, out))
    assert (old.argmax(-1) == new.argmax(-1)).mean() >= 0.75
