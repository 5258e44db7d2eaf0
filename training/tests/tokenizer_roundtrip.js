// Round-trip check of a model folder tokenizer with @huggingface/tokenizers (the engine's loader).
// node training/tests/tokenizer_roundtrip.js MODEL_DIR
const { Tokenizer } = require("@huggingface/tokenizers");
const fs = require("fs");
const dir = process.argv[2];
const tj = JSON.parse(fs.readFileSync(dir + "/tokenizer.json", "utf8"));
const tc = JSON.parse(fs.readFileSync(dir + "/tokenizer_config.json", "utf8"));
const tok = new Tokenizer(tj, tc);
const samples = ["def f(x):\n    return x + 1\n", "const a: number[] = [1, 2];\n\tlet s = `héllo ${a}` // ünïcode 🦌\n", "<fim_suffix>}\n<fim_prefix>function f() {<fim_middle>  return 1;<|endoftext|>", "   \n\n  x"];
for (const s of samples) {
  const enc = tok.encode(s);
  const dec = tok.decode(enc.ids, { skip_special_tokens: false });
  if (dec !== s) { console.error("MISMATCH", JSON.stringify(s), JSON.stringify(dec)); process.exit(1); }
  console.log(enc.ids.length, JSON.stringify(enc.ids.slice(0, 12)));
}
console.log("special", ["<|endoftext|>","<fim_prefix>","<fim_middle>","<fim_suffix>","<|mask|>","<|file_sep|>"].map(t => tok.token_to_id(t)));
