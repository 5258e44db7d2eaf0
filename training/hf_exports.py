"""
Hugging Face decoders exported the way a user exports one (`optimum-cli export onnx --task
text-generation-with-past`), for the engine's "any Hugging Face ONNX decoder plugs in" test
(test/hf/optimum.test.ts). Runs in the export venv made by training/hf_exports.sh (transformers
and Optimum need tokenizers/huggingface-hub versions other than the training venv's pins).

    python -m training.hf_exports OUT      (from the repo root; idempotent: skips what is there)

OUT/llama-random, OUT/qwen2-random: tiny LlamaForCausalLM / Qwen2ForCausalLM with random weights
and the embedded model's tokenizer (Qwen2's embedding has 64 rows past the tokenizer's, as
Qwen2.5's has 271). OUT/qwen2-random-deer: the qwen2-random export plus a DEER drafter trained for
it by training/hf_drafter.py (distilled from the transformers model on this repository's sources;
its mask token is the first unused embedding row). OUT/default-hf: models/default's verifier loaded by
transformers from model.safetensors + config.json and written back with save_pretrained.
Each OUT/NAME holds the Optimum export (model.onnx at the top, config.json, tokenizer files);
OUT/NAME.src the transformers folder it was exported from. OUT/NAME/export-key.txt is a hash of
what the export depends on (this file, the pins, models/default's files it reads): a retrained
models/default or new pins export again.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = os.path.join(ROOT, "models", "default")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")

TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=512)


DRAFTER_CODE = ("hf_drafter.py", "train_drafter.py", "model.py", "export.py", "schedule.py")
# what the test drafter distils from: files every clone has
DRAFTER_TEXTS = ",".join(os.path.join(ROOT, p) for p in ("src/**/*.ts", "training/*.py", "test/**/*.ts"))


def export_key(name):
    files = [os.path.abspath(__file__), os.path.join(ROOT, "training", "requirements-hf-export.txt")]
    if name.endswith("-deer"):
        files += [os.path.join(ROOT, "training", f) for f in DRAFTER_CODE]
    files += [os.path.join(DEFAULT, f) for f in ("config.json", "generation_config.json") + TOKENIZER_FILES]
    if name == "default-hf":
        files.append(os.path.join(DEFAULT, "model.safetensors"))
    h = hashlib.sha256()
    for f in files:
        h.update(open(f, "rb").read())
    return h.hexdigest()


def tiny_config(kind, vocab_size, eos):
    from transformers import LlamaConfig, Qwen2Config
    vocab_size += 64 if kind == "qwen2" else 0
    common = dict(vocab_size=vocab_size, eos_token_id=eos, pad_token_id=eos, bos_token_id=None,
                  tie_word_embeddings=kind == "qwen2", **TINY)
    if kind == "llama":
        return LlamaConfig(**common)
    return Qwen2Config(**common)


def random_model(kind, src):
    """A tiny random model of `kind` saved with the embedded model's tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM
    config = json.load(open(os.path.join(DEFAULT, "config.json")))
    torch.manual_seed({"llama": 1, "qwen2": 2}[kind])
    model = AutoModelForCausalLM.from_config(tiny_config(kind, config["vocab_size"], config["eos_token_id"]))
    model.save_pretrained(src)


def default_model(src):
    """models/default's verifier through transformers: from_pretrained, then save_pretrained."""
    import torch
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(DEFAULT, dtype=torch.float32)
    model.save_pretrained(src)
    shutil.copy(os.path.join(DEFAULT, "generation_config.json"), src)


def optimum_cli():
    return os.path.join(os.path.dirname(sys.executable), "optimum-cli")


def export(src, out):
    """The user's command: optimum-cli export onnx --model SRC --task text-generation-with-past OUT."""
    for f in TOKENIZER_FILES:
        shutil.copy(os.path.join(DEFAULT, f), src)
    tmp = out + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run([optimum_cli(), "export", "onnx", "--model", src, "--task", "text-generation-with-past", tmp],
                   check=True)
    os.replace(tmp, out)


def with_drafter(base_dir, out):
    """A copy of an export with a DEER drafter trained for it (what a user runs for their own model)."""
    from training.hf_drafter import HFDrafterConfig, run
    tmp = out + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(base_dir, tmp, ignore=shutil.ignore_patterns("export-key.txt"))
    run(HFDrafterConfig(model=base_dir + ".src", folder=tmp, work=out + ".work", texts=DRAFTER_TEXTS,
                        n=2048, steps1=400, steps2=150, minutes1=10.0, minutes2=5.0, threads=2))
    os.replace(tmp, out)


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    makers = {"llama-random": lambda s: random_model("llama", s),
              "qwen2-random": lambda s: random_model("qwen2", s),
              "default-hf": default_model}
    for name in [*makers, "qwen2-random-deer"]:
        out = os.path.join(out_dir, name)
        key = export_key(name) + (export_key(name[:-5]) if name.endswith("-deer") else "")
        stamp = os.path.join(out, "export-key.txt")
        if os.path.exists(stamp) and open(stamp).read() == key:
            print(f"[hf exports] {name}: cached in {out}")
            continue
        src = out + ".src"
        shutil.rmtree(src, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        if name.endswith("-deer"):
            with_drafter(os.path.join(out_dir, name[:-5]), out)
        else:
            makers[name](src)
            export(src, out)
        with open(stamp, "w") as f:
            f.write(key)
        print(f"[hf exports] {name}: exported to {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, ".cache", "hf-exports"))
