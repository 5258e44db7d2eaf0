"""pass@1 harness and acceptance simulation."""
import os
import shutil

import pytest
import torch

from training import evaluate
from training.model import GPT, GPTConfig, Drafter, DrafterConfig

PROMPT_PY = 'def is_not_prime(n: int) -> bool:\n    """Identify non-prime numbers."""\n'
TESTS_PY = "assert is_not_prime(10) == True\nassert is_not_prime(7) == False\n"


def test_run_program_python():
    good = "    return n < 2 or any(n % i == 0 for i in range(2, n))\n"
    assert evaluate.run_program(PROMPT_PY + good + "\n" + TESTS_PY, "py")
    assert not evaluate.run_program(PROMPT_PY + "    return True\n\n" + TESTS_PY, "py")


@pytest.mark.skipif(not os.path.exists(os.path.join(evaluate.ROOT, "node_modules", ".bin", "esbuild"))
                    or shutil.which("node") is None, reason="needs node and esbuild")
def test_run_program_typescript():
    prompt = "function is_not_prime(n: number): boolean {\n"
    tests = "declare var require: any;\nconst assert = require('node:assert');\nassert.deepEqual(is_not_prime(10), true);\n"
    good = "  for (let i = 2; i < n; i++) if (n % i === 0) return true;\n  return false;\n}\n"
    assert evaluate.run_program(prompt + good + "\n" + tests, "ts")
    assert not evaluate.run_program(prompt + "  return false;\n}\n\n" + tests, "ts")


def test_accepted_length_bounds():
    torch.manual_seed(0)
    v = GPT(GPTConfig(vocab_size=50, n_layer=1, n_head=2, n_kv_head=1, n_embd=16, ffn_hidden=32)).eval()
    d = Drafter(DrafterConfig(vocab_size=50, n_layer=1, n_head=2, n_embd=16, ffn_hidden=32, block_size=4,
                              context_window=8, mask_id=4)).eval()
    trajs = evaluate.trajectories(v, [[7, 8, 9, 10]], n_new=12)
    written = len(trajs[0][1]) - 1                                   # g0 comes from the prompt pass
    r = evaluate.accepted_length(v, None, drafter=d, k=4, trajs=trajs)
    assert r["tokens"] == written and sum(r["accepted_hist"]) == r["passes"]
    assert r["tau"] == written / r["passes"]
    # every pass writes its accepted drafted tokens plus one of the verifier's (the last may be cut)
    assert sum((n + 1) * c for n, c in enumerate(r["accepted_hist"])) >= written
    # the verifier drafting for itself is always fully accepted: k + 1 tokens per pass
    r = evaluate.accepted_length(v, [[7, 8, 9, 10]], ar=v, k=4, n_new=12)
    assert r["passes"] == -(-r["tokens"] // 5)


def _scripted(truth, right):
    """A drafter that gets the next `right` tokens of the verifier's own continuation right, then
    drafts wrong ones."""
    def draft(_drafter, ctx, _hidden, k, *_suffix):
        nxt = truth[len(ctx):len(ctx) + k]
        return nxt[:right] + [(t + 1) % 50 for t in nxt[right:]]
    return draft


@pytest.mark.parametrize("right", [0, 2, 4])
def test_accepted_length_counts_what_the_drafter_got_right(monkeypatch, right):
    torch.manual_seed(0)
    v = GPT(GPTConfig(vocab_size=50, n_layer=1, n_head=2, n_kv_head=1, n_embd=16, ffn_hidden=32)).eval()
    trajs = evaluate.trajectories(v, [[7, 8, 9, 10]], n_new=24)
    p, g, _ = trajs[0]
    monkeypatch.setattr(evaluate, "draft_deer", _scripted(p + g, right))
    r = evaluate.accepted_length(v, None, drafter=object(), k=4, trajs=trajs)
    written = len(g) - 1
    passes = -(-written // (right + 1))                              # each pass: right drafted + 1
    assert r["passes"] == passes and r["tokens"] == written
    assert r["tau"] == written / passes
    assert r["accepted_hist"][right] >= passes - 1                   # the last pass may run out of text


def test_healing_text_matches_the_engine():
    # src/engine/index.ts healingText: trailing whitespace (with the line break), else a word being typed
    assert evaluate.healing_text("function f(n: number) {\n") == "\n"
    assert evaluate.healing_text("def f():\n    ") == "\n    "
    assert evaluate.healing_text("    x = retu") == " retu"
    assert evaluate.healing_text("foo(") == ""


def test_trajectories_spell_the_healed_text_first():
    torch.manual_seed(0)
    v = GPT(GPTConfig(vocab_size=50, n_layer=1, n_head=2, n_kv_head=1, n_embd=16, ffn_hidden=32)).eval()
    prompt = [7, 8, 9, 10]
    one_token = [""] * 50
    one_token[12] = "\n  "                                           # the only token that can spell "\n  "
    p, g, hid = evaluate.trajectories(v, [prompt], n_new=12, owed=["\n  "], texts=one_token)[0]
    assert p == prompt and g[0] == 12
    assert hid.shape[0] == len(p) + len(g) - 1
    two_tokens = [""] * 50
    two_tokens[11], two_tokens[13] = "\n", "  "                       # spelled in two steps
    p, g, hid = evaluate.trajectories(v, [prompt], n_new=12, owed=["\n  "], texts=two_tokens)[0]
    assert g[:2] == [11, 13] and len(g) <= 13
    assert hid.shape[0] == len(p) + len(g) - 1
    # without healing the verifier writes its own first token
    assert evaluate.trajectories(v, [prompt], n_new=12)[0][1][0] not in (11, 12)


SHIPPED = os.path.join(evaluate.ROOT, "models", "default")


@pytest.mark.skipif(not os.path.exists(os.path.join(SHIPPED, "model.safetensors")), reason="needs models/default")
def test_complete_heals_as_the_engine_does():
    # the shipped model after "{\n": as typed (a lone newline token) it indents with a tab; healed,
    # the newline and the indent are one token again and it indents as TypeScript files do
    from training import tokenizer as toklib
    from training.hf import load_verifier
    v, tok = load_verifier(SHIPPED), toklib.load(os.path.join(SHIPPED, "tokenizer.json"))
    prompt = "function is_not_prime(n: number): boolean {\n"
    typed = evaluate.complete(v, tok, prompt, 8)
    healed = evaluate.complete(v, tok, prompt, 8, texts=evaluate.token_texts(tok))
    assert typed.startswith("\t")
    assert healed.startswith("  ") and not healed.startswith("\n")
