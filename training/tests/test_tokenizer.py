"""The tokenizer: special token ids, byte-level round trips (Python and the engine's JS loader)."""
import glob
import os
import shutil
import subprocess
import sysconfig

from training import tokenizer as toklib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_train_and_roundtrip(tmp_path):
    files = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "*.py")))[:40]
    path = str(tmp_path / "tokenizer.json")
    tok = toklib.train_tokenizer((open(f, encoding="utf-8").read() for f in files), 600, path)
    for i, s in enumerate(toklib.SPECIAL_TOKENS):
        assert tok.token_to_id(s) == i
    for text in ["def f(x):\n\treturn x  # ünïcode 🦌\n", "const s = `a${b}`;\r\n", "   \n\n"]:
        assert tok.decode(tok.encode(text).ids, skip_special_tokens=False) == text
    fim = "<fim_suffix>}\n<fim_prefix>def f():<fim_middle>    pass<|endoftext|>"
    ids = tok.encode(fim).ids
    assert ids[0] == toklib.FIM_SUFFIX and ids[-1] == toklib.EOS and toklib.FIM_MIDDLE in ids
    if shutil.which("node") and os.path.isdir(os.path.join(ROOT, "node_modules", "@huggingface", "tokenizers")):
        import json
        json.dump(toklib.tokenizer_config(256), open(tmp_path / "tokenizer_config.json", "w"))
        subprocess.run(["node", os.path.join(ROOT, "training", "tests", "tokenizer_roundtrip.js"), str(tmp_path)], check=True)
