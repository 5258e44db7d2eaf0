"""Tiny end-to-end run of the real pipeline on CPU, and the committed fixture against the contract."""
import glob
import json
import os
import shutil
import subprocess
import sysconfig

import pytest

from training import make_fixture

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(ROOT, "test", "fixtures", "tiny-model")
HAS_NODE = shutil.which("node") is not None and os.path.isdir(os.path.join(ROOT, "node_modules", "@huggingface", "tokenizers"))


def check_folder(d):
    deer = json.load(open(os.path.join(d, "deer.json")))
    assert deer["format"] == 1 and deer["fim_order"] in ("spm", "psm")
    assert set(deer["special_tokens"]) == {"eos", "fim_prefix", "fim_middle", "fim_suffix", "mask", "file_separator"}
    cfg = json.load(open(os.path.join(d, "config.json")))
    for k in ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "head_dim", "max_position_embeddings"):
        assert k in cfg
    import onnxruntime as ort
    v = ort.InferenceSession(os.path.join(d, deer["verifier"]["file"]))
    names = [i.name for i in v.get_inputs()]
    L = cfg["num_hidden_layers"]
    tree = ["tree_mask"] if deer["verifier"].get("tree_attention") else []
    assert names == ["input_ids", "attention_mask", "position_ids"] + tree + \
        [f"past_key_values.{i}.{kv}" for i in range(L) for kv in ("key", "value")]
    outs = [o.name for o in v.get_outputs()]
    assert outs[0] == "logits" and outs[1:2 * L + 1] == [f"present.{i}.{kv}" for i in range(L) for kv in ("key", "value")]
    assert ("hidden_states" in outs) == ("hidden_states" in deer["verifier"])
    dd = deer["drafters"]["deer"]
    s = ort.InferenceSession(os.path.join(d, dd["file"]))
    ins = [i.name for i in s.get_inputs()]
    assert ins[0] == "input_ids" and ("hidden_states" in ins) == ("hidden" in dd["conditioning"])
    assert [o.name for o in s.get_outputs()] == ["logits"]
    if HAS_NODE:
        subprocess.run(["node", os.path.join(ROOT, "training", "tests", "tokenizer_roundtrip.js"), d], check=True)


def test_committed_fixture_follows_contract():
    check_folder(FIXTURE)


def test_tiny_end_to_end(tmp_path):
    # a small local sample of the Python standard library is the corpus
    src = tmp_path / "src"
    src.mkdir()
    for p in sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))[:120]:
        shutil.copy(p, src)
    out = tmp_path / "model"
    rep = make_fixture.build(str(out), seconds=12, work=str(tmp_path / "work"), vocab=512,
                             source_dir=str(src), hidden=True, log=lambda *a: None)
    for role in ("verifier", "ar"):
        assert rep["parity"][role]["max_abs_logit_diff"] < 1e-3
        assert rep["parity"][role]["greedy_match"]
    assert rep["parity"]["verifier"]["tree_max_abs_logit_diff"] < 1e-3
    assert rep["parity"]["drafter"]["max_abs_logit_diff"] < 1e-3
    check_folder(str(out))
