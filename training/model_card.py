"""
Write the model card (README.md) of a model folder from the run's artefacts.

    python -m training.model_card --run training/work/run --folder models/default [--note "..."]

Reads: corpus/manifest.json, tokens/stats.json, verifier.pt / ar.pt / drafter checkpoints
(their training results), eval.json (accepted length, pass@1), export.json (sizes, parity).
"""
import argparse
import json
import os

import torch


def _extra(path):
    if not path or not os.path.exists(path):
        return {}
    return torch.load(path, map_location="cpu", weights_only=False).get("extra", {})


def _mb(n):
    return f"{n / 1e6:.1f} MB"


def card(run, folder, corpus_dir, tokens_dir, hardware, note="", drafter_shipped="", export_json=None, eval_json=None,
         bench=()):
    man = json.load(open(os.path.join(corpus_dir, "manifest.json")))
    stats = json.load(open(os.path.join(tokens_dir, "stats.json")))
    eval_json = eval_json or os.path.join(run, "eval.json")
    export_json = export_json or os.path.join(run, "export.json")
    ev = json.load(open(eval_json)) if os.path.exists(eval_json) else {}
    exp = json.load(open(export_json)) if os.path.exists(export_json) else {}
    v = _extra(os.path.join(run, "verifier.pt"))
    ar = _extra(os.path.join(run, "ar.pt"))
    deer = json.load(open(os.path.join(folder, "deer.json")))
    cfg = json.load(open(os.path.join(folder, "config.json")))
    L = []
    L.append("# deer-complete default model\n")
    if note:
        L.append(note + "\n")
    L.append("A small code LLM (the verifier), a DEER diffusion drafter aligned to it, and a small "
             "autoregressive (`ar`) draft model, all trained from scratch by `training/` in this "
             "repository, with a byte-level BPE tokenizer. Layout: `docs/model-folder.md`.\n")
    L.append("## Models\n")
    L.append("| file | what | params | size on disk |\n|---|---|---|---|")
    sizes = exp.get("files", {})
    d = deer["drafters"].get("deer", {})
    L.append(f"| onnx/model.onnx | verifier: Llama-style, {cfg['num_hidden_layers']} layers, d={cfg['hidden_size']}, "
             f"{cfg['num_attention_heads']} heads / {cfg['num_key_value_heads']} KV heads, vocab {cfg['vocab_size']}, "
             f"int8 weights | {v.get('params', 0) / 1e6:.2f}M | {_mb(sizes.get('onnx/model.onnx', 0))} |")
    kv_note = ", the context entering each layer as keys/values only" if "-kv-" in drafter_shipped else ""
    if d:
        L.append(f"| onnx/drafter.onnx | DEER drafter: block {d['block_size']}, context window {d['context_window']}, "
                 f"conditioning {d['conditioning']}{kv_note}, int8 weights ({drafter_shipped}) | | "
                 f"{_mb(sizes.get('onnx/drafter.onnx', 0))} |")
    if "ar" in deer["drafters"]:
        L.append(f"| onnx/ar.onnx | `ar` draft model, {deer['drafters']['ar']['num_layers']} layer(s), same tokenizer, int8 "
                 f"| {ar.get('params', 0) / 1e6:.2f}M | {_mb(sizes.get('onnx/ar.onnx', 0))} |")
    L.append(f"| tokenizer.json | byte-level BPE, vocab {stats['vocab_size']}, special tokens `<|endoftext|>` (EOS) "
             f"`<fim_prefix>` `<fim_middle>` `<fim_suffix>` `<|mask|>` `<|file_sep|>` `<fim_pad>` (ids 0-6) | | "
             f"{_mb(sizes.get('tokenizer.json', 0))} |\n")

    L.append("## Data\n")
    L.append("Permissively licensed source code only, from pinned packages (`training/corpus_sources.json`); "
             "every source with version, licence and sha256 below, every kept file's sha256 in the run's `files.tsv`. "
             "Filters: 200 B - 1 MB, UTF-8 only, minified and generated files dropped, compiled JS/.d.ts dropped from "
             "packages that ship TypeScript sources; exact and MinHash near-duplicates removed; files sharing a 13-gram "
             "of words with `../shared/eval` removed.\n")
    dd, dc = man["dedup"], man["decontamination"]
    L.append(f"- files considered after filters: {dd['before']}; exact duplicates removed {dd['exact_removed']}, "
             f"near duplicates {dd['near_removed']}; **decontamination removed {dc['files_removed']} files** "
             f"({dc['eval_ngrams']} distinct eval 13-grams).")
    L.append(f"- filter drops: {json.dumps(man.get('filter_stats', {}))}")
    L.append(f"- tokenizer: {stats['bytes_per_token']:.2f} bytes per token over the corpus.\n")
    L.append("| language | files | MB | train tokens | sampling weight (per byte) |\n|---|---|---|---|---|")
    for i, lang in enumerate(stats["languages"]):
        pl = man["per_language"][lang]
        L.append(f"| {lang} | {pl['files']} | {pl['bytes'] / 1e6:.1f} | {stats['train']['tokens_per_language'][lang] / 1e6:.2f}M "
                 f"| {stats['weights'][i]} |")
    L.append(f"| total | | | {stats['train']['tokens'] / 1e6:.1f}M (+{stats['val']['tokens'] / 1e6:.2f}M validation) | |\n")
    L.append("| source | version | licence | sha256 (archive) |\n|---|---|---|---|")
    for s in man["sources"]:
        L.append(f"| {s['kind']} {s['name']} | {s['version']} | {s['license']} | `{s['sha256'][:16]}…` |")
    L.append("")

    L.append("## Training\n")
    L.append(f"Hardware: {hardware}.\n")
    if v:
        tc = v.get("train_config", {})
        whole = v.get("cumulative", v)         # a run started from shipped weights counts on from them
        L.append(f"- verifier: {whole['tokens'] / 1e6:.2f}M tokens ({whole['steps']} steps of {tc.get('batch_size')}x{tc.get('seq_len')}), "
                 f"{whole['train_time_s'] / 60:.1f} min; next-token prediction with fill-in-the-middle on "
                 f"{tc.get('fim_rate', 0) * 100:.0f}% of documents ({tc.get('spm_rate', 0) * 100:.0f}% of those spm, the rest psm), "
                 f"every example ending in `<|endoftext|>`. **Validation loss {v['val_loss']:.3f} nats/token** "
                 f"(held-out documents, same FIM mix).")
        if "cumulative" in v:
            L.append(f"  - this run started from the weights of the previous model ({tc.get('init')}) with a fresh "
                     f"optimizer and a new warmup + cosine cycle (lr {tc.get('lr'):g} to {tc.get('min_lr'):g})")
        for i, ses in enumerate(whole.get("sessions", [])):
            L.append(f"  - session {i + 1}: steps {ses['start_step']}-{ses['end_step']}, "
                     f"{(ses['end_tokens'] - ses['start_tokens']) / 1e6:.2f}M tokens in {ses['seconds'] / 60:.1f} min = "
                     f"**{ses['tokens_per_s']:.0f} tokens/s** ({ses['threads']} threads, {'bf16' if ses.get('bf16') else 'fp32'}, {ses['device']})")
        if tc.get("long_seq_len"):
            L.append(f"  - the last {(1 - tc['long_from']) * 100:.0f}% of the run at {tc['long_seq_len']} tokens per row "
                     f"(positions up to {tc['long_seq_len']} seen in training)")
        if not v.get("finished", True):
            L.append("  - the schedule is not finished: `python -m training.pipeline --resume` continues it")
    if ar:
        L.append(f"- ar: {ar['tokens'] / 1e6:.2f}M tokens, {ar['train_time_s'] / 60:.1f} min, validation loss {ar['val_loss']:.3f}.")
    for name in sorted(os.listdir(run)):
        if name.startswith("drafter-") and name.endswith(".pt"):
            e = _extra(os.path.join(run, name))
            if e:
                L.append(f"- {name[:-3]}: {e['steps']} steps, {e['train_time_s'] / 60:.1f} min, "
                         f"one-step accepted length on held-out distillation samples {e['eval']['tau_one_step']:.2f}.")
    L.append("")

    L.append("## Evaluation\n")
    acc = ev.get("accepted_length", {})
    if acc:
        L.append("Mean accepted length tau = tokens generated per verifier pass in greedy speculative decoding, "
                 "simulated in PyTorch before export (tau = 1 + drafted tokens accepted per pass; 64 new tokens per prompt). "
                 "`held_in`: prompts cut from held-out corpus documents; `eval_py`/`eval_ts`: the prompts of "
                 "`../shared/eval/mbpp-{py,ts}-reworded.jsonl`; `fim_py`/`fim_ts`: the same programs as fill-in-the-middle "
                 "prompts (prefix = the prompt, suffix = the tests after it). Drafter names: conditioning (`-kv`: the context enters each layer as keys/values only, "
                 "so only the block runs attention and MLP; `-suffix`: "
                 "also sees the first tokens after the cursor), block k, after stage I (s1) or stage II (s2).\n")
        sets = sorted({key.split(" ")[2] for key in acc})
        L.append("| drafter | k | " + " | ".join(sets) + " |\n|---|---|" + "---|" * len(sets))
        rows = sorted({(key.split(" ")[0], key.split(" ")[1]) for key in acc})
        for name, k in rows:
            L.append(f"| {name.replace('.pt', '')} | {k[2:]} | " +
                     " | ".join(f"{acc[f'{name} {k} {s}']['tau']:.2f}" if f"{name} {k} {s}" in acc else "" for s in sets) + " |")
        L.append("")
        L.append("Acceptance by position (share of verifier passes whose draft was accepted at least up to "
                 "position i), for the shipped drafter and `ar`:\n")
        for key, r in sorted(acc.items()):
            if "accept_rate_by_position" in r and (drafter_shipped in key or key.startswith("ar")):
                L.append(f"- {key}: " + " ".join(f"{x:.2f}" for x in r["accept_rate_by_position"][:8]) + " ...")
        L.append("")
    pj = os.path.join(run, "pipeline.json")
    summary = json.load(open(pj)) if os.path.exists(pj) else {}
    choice, costs = summary.get("drafter_choice"), summary.get("pass_costs_ms")
    if choice:
        L.append("Which drafter ships: the best estimated speedup = tau (mean over the prompt sets) x one-token verifier "
                 "pass / (verifier pass over the block + drafter pass), pass times measured in PyTorch on this CPU "
                 f"(verifier: one token {costs['verify_one_ms']:.2f} ms, block {costs['verify_block_ms']:.2f} ms):\n")
        L.append("| drafter | tau | drafter pass (ms) | estimated speedup |\n|---|---:|---:|---:|")
        for path, r in choice.items():
            L.append(f"| {os.path.basename(path)[:-3]} | {r['tau']:.2f} | {r['draft_ms']:.2f} | {r['estimated_speedup']:.2f}x |")
        L.append("")
    ho = ev.get("held_out")
    if ho:
        L.append(f"- held-out split of the corpus (plain documents, {ho['tokens']} tokens in windows of {ho['seq_len']}): "
                 f"**{ho['bits_per_byte']:.3f} bits per byte** ({ho['nats_per_token']:.3f} nats/token)")
    for key in sorted(k for k in ev if k.startswith("repetition_")):
        r = ev[key]
        L.append(f"- {key[len('repetition_'):]}: {r['looping']}/{r['n']} greedy 64-token completions end in a repetition loop "
                 f"({r['share'] * 100:.0f}%)")
    for lang in ("py", "ts"):
        r = ev.get(f"pass_at_1_{lang}")
        if r:
            L.append(f"- pass@1 (greedy) on mbpp-{lang}-reworded: {r['passed']}/{r['n']} = {r['pass_at_1'] * 100:.1f}%")
    par = exp.get("parity", {})
    if par:
        L.append("\nParity, PyTorch fp32 vs onnxruntime with the int8 files (a fixed code prompt): " +
                 "; ".join(f"{k}: max |logit diff| {p['max_abs_logit_diff']:.3f}" +
                           (f", 16 greedy tokens identical with KV cache (past 0, and chunked): {p['greedy_match']}"
                            if "greedy_match" in p else f", argmax agreement {p['argmax_agreement']:.2f}") +
                           (f", one 8-token pass vs 8 one-token passes: max |logit diff| {p['max_abs_multi_vs_single_diff']:.1e}"
                            if "max_abs_multi_vs_single_diff" in p else "")
                           for k, p in par.items()) + ". The fp32 export matches PyTorch to ~1e-5.")
    L.append("\nint8 note: weights only (per-channel int8 scales, the LM head sharing the embedding's table); "
             "onnxruntime dequantizes them once at load and computes in fp32, so no activation is quantized and a "
             "token's logits do not depend on the other tokens of a pass: speculative output equals the verifier's "
             "own greedy output.\n")
    if bench:
        L.append(speed_section(bench))
    L.append("## Limits\n")
    L.append("Tiny and briefly trained: completions are short-range pattern continuations, not solutions. "
             "Licences of the training sources are listed above; the weights are released under the "
             "repository's MIT licence.")
    return "\n".join(L) + "\n"


def speed_section(bench):
    """The card's "Speed in the engine" section from deer bench JSON files (greedy rows)."""
    L = ["## Speed in the engine\n",
         "`deer bench` (the TypeScript engine, onnxruntime on the CPU, 1 thread; `bash bench/run-figures.sh`), "
         "greedy, 64 new tokens; speedup = tokens/s over `none`'s in the same run; identical = every "
         "completion equal to `none`'s:\n",
         "| prompts | drafter | tokens/s | mean accepted | speedup | identical |\n|---|---|---:|---:|---:|:---:|"]
    for path in bench:
        b = json.load(open(path))
        name = os.path.basename(path)[:-5]
        for d, x in b["results"].items():
            if x.get("temperature", 0) == 0:
                L.append(f"| {name} ({b['config']['prompt_count']}) | {d} | {x['tokens_per_s']:.1f} | "
                         f"{x['mean_accepted']:.2f} | {x['speedup']:.2f}x | {'yes' if x['identical'] else 'no'} |")
    L.append(f"\nMachine: {json.load(open(bench[0]))['machine'].get('cpu', '')}\n")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="")
    ap.add_argument("--folder", required=True)
    ap.add_argument("--corpus", default="training/work/corpus")
    ap.add_argument("--tokens", default="training/work/tokens")
    ap.add_argument("--hardware", default="CPU")
    ap.add_argument("--note", default="")
    ap.add_argument("--drafter-shipped", default="")
    ap.add_argument("--export-json")
    ap.add_argument("--eval-json")
    ap.add_argument("--passat1-json", help="merge pass@1 results from a separate evaluate run")
    ap.add_argument("--bench", nargs="*", default=[], help="deer bench JSON files (bench/mbpp-*.json): the engine's measured speed")
    ap.add_argument("--speed-only", action="store_true",
                    help="replace only the Speed in the engine section of the folder's card, from --bench")
    a = ap.parse_args()
    if a.speed_only:
        path = os.path.join(a.folder, "README.md")
        text = open(path).read()
        start, end = text.index("## Speed in the engine\n"), text.index("## Limits\n")
        open(path, "w").write(text[:start] + speed_section(a.bench) + "\n" + text[end:])
        return
    evj = a.eval_json
    if a.passat1_json and os.path.exists(a.passat1_json):
        ev = json.load(open(evj)) if evj and os.path.exists(evj) else {}
        ev.update({k: v for k, v in json.load(open(a.passat1_json)).items() if k.startswith("pass_at_1")})
        evj = os.path.join(a.run, "eval-merged.json")
        json.dump(ev, open(evj, "w"), indent=2)
    text = card(a.run, a.folder, a.corpus, a.tokens, a.hardware, a.note, a.drafter_shipped, a.export_json, evj, a.bench)
    open(os.path.join(a.folder, "README.md"), "w").write(text)
    print(text)


if __name__ == "__main__":
    main()
