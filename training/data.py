"""
Tokenized corpus and training batches.

prepare: docs.jsonl -> out/{train,val}.bin (uint16 tokens of all docs, concatenated)
         + out/{train,val}_docs.npy (int64 (n_docs, 3): start, length, language id)
Batcher: packed rows of seq_len + 1 tokens; each piece is a window of a document,
         turned into a fill-in-the-middle example with probability fim_rate
         (spm with probability spm_rate, else psm), always ended by <|endoftext|>:
           plain  D <eos>
           psm    <fim_prefix> P <fim_suffix> S <fim_middle> M <eos>
           spm    <fim_suffix> S <fim_prefix> P <fim_middle> M <eos>
         Documents are drawn with probability ~ length x language weight.

    python -m training.data --corpus training/work/corpus --tokenizer tok.json --out training/work/tokens
"""
import argparse
import json
import os

import numpy as np
import torch

from training import tokenizer as toklib
from training.tokenizer import EOS, FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX


def prepare(corpus_dir, tokenizer_path, out, val_every=100, log=print):
    """Tokenize docs.jsonl; every val_every-th doc (by order) goes to validation."""
    tok = toklib.load(tokenizer_path)
    man = json.load(open(os.path.join(corpus_dir, "manifest.json")))
    langs = list(man["languages"])
    docs = [json.loads(l) for l in open(os.path.join(corpus_dir, "docs.jsonl"), encoding="utf-8")]
    os.makedirs(out, exist_ok=True)
    stats = {}
    for split in ("train", "val"):
        sel = [d for i, d in enumerate(docs) if (i % val_every == val_every - 1) == (split == "val")]
        ids, meta, pos = [], [], 0
        for s in range(0, len(sel), 256):
            batch = sel[s:s + 256]
            for d, enc in zip(batch, tok.encode_batch([d["text"] for d in batch])):
                a = np.asarray(enc.ids, dtype=np.uint16)
                ids.append(a)
                meta.append((pos, len(a), langs.index(d["lang"])))
                pos += len(a)
        np.concatenate(ids).tofile(os.path.join(out, f"{split}.bin"))
        np.save(os.path.join(out, f"{split}_docs.npy"), np.array(meta, dtype=np.int64))
        per_lang = {l: int(sum(m[1] for m in meta if m[2] == i)) for i, l in enumerate(langs)}
        stats[split] = {"docs": len(sel), "tokens": pos, "tokens_per_language": per_lang}
    stats["languages"] = langs
    stats["vocab_size"] = tok.get_vocab_size()
    stats["weights"] = [man["languages"][l]["weight"] for l in langs]
    stats["bytes_per_token"] = sum(len(d["text"].encode()) for d in docs) / max(1, stats["train"]["tokens"] + stats["val"]["tokens"])
    json.dump(stats, open(os.path.join(out, "stats.json"), "w"), indent=2)
    log(json.dumps(stats))
    return stats


class TokenData:
    def __init__(self, data_dir, split):
        self.tokens = np.fromfile(os.path.join(data_dir, f"{split}.bin"), dtype=np.uint16)
        self.docs = np.load(os.path.join(data_dir, f"{split}_docs.npy"))
        stats = json.load(open(os.path.join(data_dir, "stats.json")))
        w = np.asarray(stats["weights"])[self.docs[:, 2]] * self.docs[:, 1]
        self.cdf = np.cumsum(w / w.sum())
        self.langs = stats["languages"]

    def doc(self, i):
        s, n, _ = self.docs[i]
        return self.tokens[s:s + n]


def fim_transform(toks, rng, fim_rate, spm_rate):
    """toks: 1-D int array of one document window -> list of ids (no trailing EOS)."""
    if len(toks) < 3 or rng.random() >= fim_rate:
        return toks.tolist()
    a, b = sorted(rng.integers(0, len(toks) + 1, size=2))
    P, M, S = toks[:a].tolist(), toks[a:b].tolist(), toks[b:].tolist()
    if rng.random() < spm_rate:
        return [FIM_SUFFIX] + S + [FIM_PREFIX] + P + [FIM_MIDDLE] + M
    return [FIM_PREFIX] + P + [FIM_SUFFIX] + S + [FIM_MIDDLE] + M


class Batcher:
    def __init__(self, data: TokenData, seq_len, fim_rate=0.5, spm_rate=0.6, seed=0):
        self.d, self.T, self.fim_rate, self.spm_rate = data, seq_len, fim_rate, spm_rate
        self.rng = np.random.default_rng(seed)

    def row(self):
        out, T1 = [], self.T + 1
        while len(out) < T1:
            i = min(int(np.searchsorted(self.d.cdf, self.rng.random())), len(self.d.docs) - 1)
            doc = self.d.doc(i)
            room = T1 - len(out)
            win = min(len(doc), max(room, 64), self.T - 3)
            start = 0 if len(doc) <= win or self.rng.random() < 0.3 else int(self.rng.integers(0, len(doc) - win + 1))
            out += fim_transform(doc[start:start + win], self.rng, self.fim_rate, self.spm_rate) + [EOS]
        return out[:T1]

    def get(self, batch_size):
        """-> x, y (B, T) int64"""
        rows = torch.tensor([self.row() for _ in range(batch_size)], dtype=torch.long)
        return rows[:, :-1], rows[:, 1:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    prepare(args.corpus, args.tokenizer, args.out)


if __name__ == "__main__":
    main()
