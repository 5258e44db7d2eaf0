// The model's tokenizer: encoding, fill-in-the-middle prompts, and a streaming decoder that
// never emits half a UTF-8 character.
import { Tokenizer } from '@huggingface/tokenizers';
import { join } from 'node:path';
import { FimOrder, ModelFolderError, ModelSpec } from './modelFolder';

export interface SpecialIds {
  eos: Set<number>;
  fimPrefix?: number;
  fimSuffix?: number;
  fimMiddle?: number;
  mask?: number;
}

const FIM_SPELLINGS = {
  fimPrefix: ['<fim_prefix>', '<|fim_prefix|>', '<fim-prefix>'],
  fimSuffix: ['<fim_suffix>', '<|fim_suffix|>', '<fim-suffix>'],
  fimMiddle: ['<fim_middle>', '<|fim_middle|>', '<fim-middle>'],
} as const;

interface AddedToken {
  id: number;
  content: string;
  special?: boolean;
}

/** Cap on DeerTokenizer.maxTokenChars (a vocabulary with a few very long entries would otherwise widen every cut). */
const MAX_TOKEN_CHARS = 32;

/** The last `n` characters of `text`, not starting inside a surrogate pair. */
function lastChars(text: string, n: number): string {
  if (text.length <= n) return text;
  const cut = text.length - n;
  const c = text.charCodeAt(cut);
  return text.slice(c >= 0xdc00 && c <= 0xdfff ? cut + 1 : cut);
}

/** The first `n` characters of `text`, not ending inside a surrogate pair. */
function firstChars(text: string, n: number): string {
  if (text.length <= n) return text;
  const c = text.charCodeAt(n - 1);
  return text.slice(0, c >= 0xd800 && c <= 0xdbff ? n - 1 : n);
}

export class DeerTokenizer {
  readonly special: SpecialIds;
  readonly fimOrder: FimOrder;
  /** Decodes, and encodes what the engine itself writes. */
  private readonly tok: Tokenizer;
  /**
   * Encodes user text: the same tokenizer without its special added tokens, so a document that
   * contains `<fim_middle>` or `<|endoftext|>` is read as those characters, never as control ids
   * (@huggingface/tokenizers matches added tokens in the text even without add_special_tokens).
   */
  private readonly textTok: Tokenizer;
  /** Ids that are not text: special added tokens, EOS, FIM and mask ids. */
  private readonly controlIds: Set<number>;
  /**
   * Most characters one token can cover (the longest vocabulary entry, capped): a prompt of
   * `budget` tokens never needs more than budget * this many characters, so longer text is cut
   * by characters before it is tokenized (a 10 MB file costs the same as a window).
   */
  readonly maxTokenChars: number;

  constructor(spec: ModelSpec) {
    const file = join(spec.dir, 'tokenizer.json');
    const json = spec.tokenizerJson as { added_tokens?: AddedToken[] };
    const added = Array.isArray(json.added_tokens) ? json.added_tokens : [];
    try {
      this.tok = new Tokenizer(json as object, spec.tokenizerConfig);
      this.textTok = new Tokenizer({ ...json, added_tokens: added.filter((t) => t.special !== true) }, spec.tokenizerConfig);
    } catch (e) {
      throw new ModelFolderError(file, `cannot be loaded by @huggingface/tokenizers (${(e as Error).message})`);
    }
    const manifest = join(spec.dir, spec.hasManifest ? 'deer.json' : 'tokenizer_config.json');
    const lookup = (name: string | number | undefined, what: string): number | undefined => {
      if (name === undefined) return undefined;
      if (typeof name === 'number') {
        if (name < 0 || name >= spec.vocabSize) throw new ModelFolderError(manifest, `${what} id ${name} is outside the model's vocabulary (config.json vocab_size ${spec.vocabSize})`);
        return name;
      }
      const id = this.tok.token_to_id(name);
      if (id === undefined) throw new ModelFolderError(manifest, `${what} token ${JSON.stringify(name)} is not in tokenizer.json`);
      if (id >= spec.vocabSize) {
        throw new ModelFolderError(manifest, `${what} token ${JSON.stringify(name)} has id ${id}, outside the model's vocabulary (config.json vocab_size ${spec.vocabSize})`);
      }
      return id;
    };
    const eos = new Set<number>(spec.eosIds);
    for (const name of spec.special.eos) eos.add(lookup(name, 'eos')!);
    const sp = spec.special;
    let fimPrefix = lookup(sp.fimPrefix, 'fim_prefix');
    let fimSuffix = lookup(sp.fimSuffix, 'fim_suffix');
    let fimMiddle = lookup(sp.fimMiddle, 'fim_middle');
    if (!spec.hasManifest) {
      const find = (names: readonly string[]) => names.map((n) => this.tok.token_to_id(n)).find((id) => id !== undefined);
      fimPrefix = find(FIM_SPELLINGS.fimPrefix);
      fimSuffix = find(FIM_SPELLINGS.fimSuffix);
      fimMiddle = find(FIM_SPELLINGS.fimMiddle);
    }
    this.special = { eos, fimPrefix, fimSuffix, fimMiddle, mask: lookup(sp.mask, 'mask') };
    this.fimOrder = spec.fimOrder;
    let longest = 1;
    for (const token of this.textTok.get_vocab(false).keys()) longest = Math.max(longest, token.length);
    this.maxTokenChars = Math.min(longest, MAX_TOKEN_CHARS);
    this.controlIds = new Set([...added.filter((t) => t.special === true).map((t) => t.id), ...eos]);
    for (const id of [fimPrefix, fimSuffix, fimMiddle, this.special.mask]) if (id !== undefined) this.controlIds.add(id);
  }

  /** True for ids that must never reach the user: control tokens, and ids past the tokenizer's vocabulary. */
  isControl(id: number): boolean {
    return this.controlIds.has(id) || this.tok.id_to_token(id) === undefined;
  }

  get fim(): boolean {
    const s = this.special;
    return s.fimPrefix !== undefined && s.fimSuffix !== undefined && s.fimMiddle !== undefined;
  }

  /** Ordinary tokens for user text: every character is text, whatever it spells. */
  encode(text: string): number[] {
    if (text.length === 0) return [];
    return this.textTok.encode(text, { add_special_tokens: false }).ids;
  }

  /** Text of `ids`; control tokens are left out. */
  decode(ids: readonly number[]): string {
    if (ids.length === 0) return '';
    return this.tok.decode(ids as number[], { skip_special_tokens: true });
  }

  private texts?: { byId: string[]; healing: boolean };

  /**
   * Each id's text as it reads after other text ('' for control ids), and whether token healing
   * works with this tokenizer: text decodes back to itself and every printable ASCII character and
   * whitespace has a token of its own, so any typed text can be spelled again. Built on first use.
   */
  private tokenTexts(): { byId: string[]; healing: boolean } {
    if (this.texts) return this.texts;
    const anchor = this.encode('a');
    const base = this.decode(anchor);
    let size = 0;
    for (const id of this.tok.get_vocab(true).values()) size = Math.max(size, id + 1);
    const byId: string[] = new Array(size).fill('');
    const single = new Set<string>();
    for (let id = 0; id < size; id++) {
      if (this.isControl(id)) continue;
      const text = this.decode([...anchor, id]);
      byId[id] = text.startsWith(base) ? text.slice(base.length) : '';
      if (byId[id].length === 1) single.add(byId[id]);
    }
    const sample = 'x = f(a, b);\n\tif (y) {\n    return z_1 + 2;\n  }\n';
    let healing = anchor.length === 1 && this.decode(this.encode(sample)) === sample;
    for (let c = 32; healing && c < 127; c++) healing = single.has(String.fromCharCode(c));
    for (const c of '\n\t') healing &&= single.has(c);
    this.texts = { byId, healing };
    return this.texts;
  }

  /** Whether completions can heal the prompt's last token (token healing; see tokenTexts). */
  get canHeal(): boolean {
    return this.tokenTexts().healing;
  }

  /**
   * Token healing: ids that may come next when the output must still spell `owed`: those whose
   * text starts with it, those that are a start of it, and end-of-text.
   */
  healingIds(owed: string): Set<number> {
    const ids = new Set<number>(this.special.eos);
    for (const [id, text] of this.tokenTexts().byId.entries()) {
      if (text.length > 0 && (text.startsWith(owed) || owed.startsWith(text))) ids.add(id);
    }
    return ids;
  }

  /** Text of one id as it reads after other text. */
  tokenText(id: number): string {
    return this.tokenTexts().byId[id] ?? '';
  }

  tokenId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  /**
   * The prompt for a completion at the cursor, untrimmed (the engine's budget is PromptWindow's):
   * the plain prefix when the suffix is empty (or the model has no FIM tokens), otherwise the
   * fill-in-the-middle layout the model was trained on:
   * psm = <fim_prefix>P<fim_suffix>S<fim_middle>, spm = <fim_suffix>S<fim_prefix>P<fim_middle>.
   */
  buildPrompt(prefix: string, suffix = ''): number[] {
    const p = this.encode(prefix);
    return suffix.length === 0 || !this.fim ? p : this.fimPrompt(p, this.encode(suffix));
  }

  /** Prefix and suffix cut by characters to what `budget` tokens can hold (a 10 MB file costs what its window costs). */
  boundText(prefix: string, suffix: string, budget: number): { prefix: string; suffix: string } {
    const maxChars = budget * this.maxTokenChars;
    return { prefix: lastChars(prefix, maxChars), suffix: firstChars(suffix, maxChars) };
  }

  /** The fill-in-the-middle layout the model was trained on, around prefix tokens `p` and suffix tokens `s`. */
  fimPrompt(p: readonly number[], s: readonly number[]): number[] {
    const { fimPrefix, fimSuffix, fimMiddle } = this.special as Required<SpecialIds>;
    return this.fimOrder === 'psm'
      ? [fimPrefix, ...p, fimSuffix, ...s, fimMiddle]
      : [fimSuffix, ...s, fimPrefix, ...p, fimMiddle];
  }
}

/**
 * Incremental detokenization (the text-generation-inference scheme): decode a short window of
 * tokens and emit only text that is stable, i.e. not ending in an incomplete UTF-8 sequence.
 */
export class StreamDecoder {
  private tokens: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;

  constructor(private readonly tokenizer: { decode(ids: readonly number[]): string }) {}

  /** Adds tokens; returns the newly stable text (may be ''). */
  push(ids: readonly number[]): string {
    let out = '';
    for (const id of ids) out += this.pushOne(id);
    return out;
  }

  private pushOne(id: number): string {
    this.tokens.push(id);
    const prefixText = this.tokenizer.decode(this.tokens.slice(this.prefixOffset, this.readOffset));
    const newText = this.tokenizer.decode(this.tokens.slice(this.prefixOffset));
    if (newText.length > prefixText.length && !newText.endsWith('\uFFFD')) {
      this.prefixOffset = this.readOffset;
      this.readOffset = this.tokens.length;
      return newText.slice(prefixText.length);
    }
    return '';
  }

  /** Text still held back (an incomplete character at the end); call once at the end. */
  flush(): string {
    const prefixText = this.tokenizer.decode(this.tokens.slice(this.prefixOffset, this.readOffset));
    const newText = this.tokenizer.decode(this.tokens.slice(this.prefixOffset));
    this.prefixOffset = this.readOffset = this.tokens.length;
    return newText.length > prefixText.length ? newText.slice(prefixText.length) : '';
  }
}
