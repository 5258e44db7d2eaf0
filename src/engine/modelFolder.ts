// Reads a model folder (Hugging Face layout + optional deer.json, see docs/model-folder.md)
// and names the file and the problem when something is wrong.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { ENGINE_DEFAULTS } from './defaults';

/** A model folder problem: `file` is the path of the file that is missing or wrong. */
export class ModelFolderError extends Error {
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = 'ModelFolderError';
  }
}

export type Conditioning = 'context' | 'hidden' | 'suffix';
export type FimOrder = 'psm' | 'spm';

export interface DecoderShape {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
}

export interface DiffusionDrafterSpec {
  file: string;
  blockSize: number;
  /** drafters.deer.tree_budget: the node budget measured best for this drafter, when the folder says. */
  treeBudget?: number;
  contextWindow: number;
  conditioning: Conditioning[];
}

export interface ArDrafterSpec extends DecoderShape {
  file: string;
}

export interface SpecialTokenNames {
  eos: string[];
  fimPrefix?: string;
  fimSuffix?: string;
  fimMiddle?: string;
  /** A token string, or an embedding row's id where the tokenizer has no mask token (a foreign verifier's drafter). */
  mask?: string | number;
  fileSeparator?: string;
}

export interface ModelSpec {
  dir: string;
  name: string;
  hasManifest: boolean;
  vocabSize: number;
  hiddenSize: number;
  maxPositions: number;
  verifier: DecoderShape & {
    file: string;
    hiddenStates?: { output: string; size: number };
    /** deer.json verifier.tree_attention: the graph takes tree_mask (draft trees in one pass). */
    treeAttention?: boolean;
    /** deer.json verifier.min_tokens_per_pass: passes are padded to this many tokens. */
    minTokensPerPass?: number;
  };
  deer?: DiffusionDrafterSpec;
  ar?: ArDrafterSpec;
  special: SpecialTokenNames;
  /** EOS ids given as numbers (config/generation_config), merged with `special.eos` by the tokenizer. */
  eosIds: number[];
  fimOrder: FimOrder;
  tokenizerJson: unknown;
  tokenizerConfig: Record<string, unknown>;
}

type Json = Record<string, unknown>;

function readJson(file: string, required: boolean): Json | undefined {
  if (!existsSync(file)) {
    if (required) throw new ModelFolderError(file, 'missing');
    return undefined;
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ModelFolderError(file, `cannot be read (${(e as Error).message})`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ModelFolderError(file, `is not valid JSON (${(e as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ModelFolderError(file, 'must contain a JSON object');
  }
  return value as Json;
}

function int(obj: Json, key: string, file: string, fallback?: number): number {
  const v = obj[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new ModelFolderError(file, `"${key}" is missing`);
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    throw new ModelFolderError(file, `"${key}" must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

function treeBudget(n: number, file: string): number {
  const most = ENGINE_DEFAULTS.maxTreeBudget;
  if (n > most) throw new ModelFolderError(file, `"tree_budget" must be at most ${most} nodes, got ${n}`);
  return n;
}

function onnxFile(dir: string, rel: unknown, manifest: string, what: string): string {
  if (typeof rel !== 'string' || rel.length === 0) {
    throw new ModelFolderError(manifest, `${what}: "file" must be a path inside the model folder`);
  }
  const file = resolve(dir, rel);
  if (!existsSync(file)) throw new ModelFolderError(file, `missing (named by ${basename(manifest)} for ${what})`);
  if (statSync(file).size < 16) throw new ModelFolderError(file, 'is empty or truncated');
  return file;
}

function ids(v: unknown): number[] {
  if (typeof v === 'number') return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number');
  return [];
}

/** Where a folder without deer.json keeps its verifier, in order: transformers.js, then optimum-cli's layout. */
export const PLAIN_VERIFIER_FILES = ['onnx/model.onnx', 'onnx/model_quantized.onnx', 'model.onnx', 'model_quantized.onnx'];

/** Reads and checks a model folder. ONNX graphs are checked later, when their sessions load. */
export function readModelFolder(dirIn: string): ModelSpec {
  const dir = resolve(dirIn);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ModelFolderError(dir, 'model folder not found');

  const configFile = join(dir, 'config.json');
  const config = readJson(configFile, true)!;
  const tokenizerFile = join(dir, 'tokenizer.json');
  const tokenizerJson = readJson(tokenizerFile, true)!;
  if (typeof tokenizerJson.model !== 'object' || tokenizerJson.model === null) {
    throw new ModelFolderError(tokenizerFile, 'has no "model" section: not a Hugging Face tokenizer.json');
  }
  const tokenizerConfig = readJson(join(dir, 'tokenizer_config.json'), false) ?? {};
  const genConfig = readJson(join(dir, 'generation_config.json'), false) ?? {};
  const manifestFile = join(dir, 'deer.json');
  const manifest = readJson(manifestFile, false);

  const hiddenSize = int(config, 'hidden_size', configFile);
  const numHeads = int(config, 'num_attention_heads', configFile);
  const verifierShape: DecoderShape = {
    numLayers: int(config, 'num_hidden_layers', configFile),
    numKvHeads: int(config, 'num_key_value_heads', configFile, numHeads),
    headDim: int(config, 'head_dim', configFile, Math.floor(hiddenSize / numHeads)),
  };
  const vocabSize = int(config, 'vocab_size', configFile);
  const maxPositions = int(config, 'max_position_embeddings', configFile, 2048);
  const eosIds = [...new Set([...ids(genConfig.eos_token_id), ...ids(config.eos_token_id)])];

  const spec: ModelSpec = {
    dir,
    name: basename(dir),
    hasManifest: manifest !== undefined,
    vocabSize,
    hiddenSize,
    maxPositions,
    verifier: { ...verifierShape, file: join(dir, 'onnx', 'model.onnx') },
    special: { eos: [] },
    eosIds,
    fimOrder: 'spm',
    tokenizerJson,
    tokenizerConfig,
  };

  if (manifest === undefined) {
    // A plain Hugging Face export: the verifier is found where Optimum or transformers.js puts it.
    const found = PLAIN_VERIFIER_FILES.map((f) => join(dir, f)).find((f) => existsSync(f));
    const legacy = ['decoder_model_merged.onnx', 'onnx/decoder_model_merged.onnx'].map((f) => join(dir, f)).find((f) => existsSync(f));
    if (!found && legacy) {
      throw new ModelFolderError(legacy, 'is a legacy Optimum export (decoder with use_cache_branch), which this engine does not run: re-export with optimum-cli export onnx --task text-generation-with-past (without --legacy)');
    }
    if (!found) {
      throw new ModelFolderError(
        join(dir, 'model.onnx'),
        `missing: without deer.json the verifier must be one of ${PLAIN_VERIFIER_FILES.join(', ')} ` +
          '(optimum-cli export onnx --task text-generation-with-past writes model.onnx)',
      );
    }
    spec.verifier.file = found;
    const eosName = typeof tokenizerConfig.eos_token === 'string' ? tokenizerConfig.eos_token : undefined;
    spec.special = { eos: eosName ? [eosName] : [] };
    spec.fimOrder = 'psm';
    return spec;
  }

  if (manifest.format !== 1) throw new ModelFolderError(manifestFile, `unknown "format" ${JSON.stringify(manifest.format)} (this engine reads format 1)`);
  const v = manifest.verifier as Json | undefined;
  if (!v || typeof v !== 'object') throw new ModelFolderError(manifestFile, '"verifier" section is missing');
  spec.verifier.file = onnxFile(dir, v.file, manifestFile, 'verifier');
  if (v.hidden_states !== undefined) {
    const hs = v.hidden_states as Json;
    const output = typeof hs.output === 'string' ? hs.output : 'hidden_states';
    spec.verifier.hiddenStates = { output, size: int(hs, 'size', manifestFile) };
  }
  if (v.tree_attention !== undefined) {
    if (typeof v.tree_attention !== 'boolean') throw new ModelFolderError(manifestFile, 'verifier.tree_attention must be true or false');
    spec.verifier.treeAttention = v.tree_attention;
  }
  if (v.min_tokens_per_pass !== undefined) {
    const n = v.min_tokens_per_pass;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 8) throw new ModelFolderError(manifestFile, 'verifier.min_tokens_per_pass must be a whole number from 1 to 8');
    spec.verifier.minTokensPerPass = n;
  }

  const drafters = (manifest.drafters ?? {}) as Json;
  if (drafters.deer !== undefined) {
    const d = drafters.deer as Json;
    const conditioning = (Array.isArray(d.conditioning) ? d.conditioning : ['context']) as string[];
    for (const c of conditioning) {
      if (c !== 'context' && c !== 'hidden' && c !== 'suffix') {
        throw new ModelFolderError(manifestFile, `drafters.deer.conditioning: unknown value ${JSON.stringify(c)} (context, hidden, suffix)`);
      }
    }
    if (conditioning.includes('hidden') && !spec.verifier.hiddenStates) {
      throw new ModelFolderError(manifestFile, 'drafters.deer is conditioned on "hidden" but verifier.hidden_states is not declared');
    }
    spec.deer = {
      file: onnxFile(dir, d.file, manifestFile, 'drafters.deer'),
      blockSize: int(d, 'block_size', manifestFile, 16),
      ...(d.tree_budget !== undefined ? { treeBudget: treeBudget(int(d, 'tree_budget', manifestFile), manifestFile) } : {}),
      contextWindow: int(d, 'context_window', manifestFile, 128),
      conditioning: conditioning as Conditioning[],
    };
  }
  if (drafters.ar !== undefined) {
    const a = drafters.ar as Json;
    spec.ar = {
      file: onnxFile(dir, a.file, manifestFile, 'drafters.ar'),
      numLayers: int(a, 'num_layers', manifestFile),
      numKvHeads: int(a, 'num_key_value_heads', manifestFile),
      headDim: int(a, 'head_dim', manifestFile),
    };
  }

  const st = (manifest.special_tokens ?? {}) as Json;
  const str = (k: string) => (typeof st[k] === 'string' ? (st[k] as string) : undefined);
  const eos = Array.isArray(st.eos) ? (st.eos as string[]) : str('eos') ? [str('eos')!] : [];
  spec.special = {
    eos,
    fimPrefix: str('fim_prefix'),
    fimSuffix: str('fim_suffix'),
    fimMiddle: str('fim_middle'),
    mask: Number.isInteger(st.mask) ? (st.mask as number) : str('mask'),
    fileSeparator: str('file_separator'),
  };
  if (spec.deer && spec.special.mask === undefined) throw new ModelFolderError(manifestFile, 'special_tokens.mask is required by drafters.deer');
  const order = manifest.fim_order ?? 'spm';
  if (order !== 'psm' && order !== 'spm') throw new ModelFolderError(manifestFile, `fim_order must be "psm" or "spm", got ${JSON.stringify(order)}`);
  spec.fimOrder = order;
  return spec;
}
