"""
Byte-level BPE tokenizer for code, trained with the `tokenizers` library.

Special tokens come first, with fixed ids, so every model of the pipeline agrees:
  0 <|endoftext|>  EOS and document separator
  1 <fim_prefix>   2 <fim_middle>   3 <fim_suffix>   (FIM, psm and spm)
  4 <|mask|>       the DEER drafter's mask token
  5 <|file_sep|>   6 <fim_pad>
The result is a single tokenizer.json that @huggingface/tokenizers (JS) loads.

    python -m training.tokenizer --files-from list.txt --vocab 16384 --out tok.json
"""
import argparse
import json
import os

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIAL_TOKENS = ["<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>",
                  "<|mask|>", "<|file_sep|>", "<fim_pad>"]
EOS, FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, MASK, FILE_SEP, FIM_PAD = range(len(SPECIAL_TOKENS))


def train_tokenizer(texts, vocab_size, out_path=None):
    """texts: an iterable of str. Returns the trained Tokenizer (and saves it if out_path)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    for i, s in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(s) == i, (s, tok.token_to_id(s))
    if out_path:
        tok.save(out_path)
    return tok


def load(path):
    return Tokenizer.from_file(path)


def tokenizer_config(model_max_length):
    """tokenizer_config.json for the model folder."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "mask_token": "<|mask|>",
        "additional_special_tokens": SPECIAL_TOKENS[1:],
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": model_max_length,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files-from", required=True, help="text file listing one input file per line")
    ap.add_argument("--vocab", type=int, default=16384)
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-bytes", type=int, default=40_000_000, help="train on at most this much text")
    args = ap.parse_args()
    paths = [p.strip() for p in open(args.files_from) if p.strip()]

    def texts():
        n = 0
        for p in paths:
            with open(p, encoding="utf-8") as f:
                t = f.read()
            n += len(t)
            yield t
            if n > args.max_bytes:
                return

    train_tokenizer(texts(), args.vocab, args.out)
    print(json.dumps({"vocab": args.vocab, "out": os.path.abspath(args.out)}))


if __name__ == "__main__":
    main()
