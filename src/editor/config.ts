// The extension's settings: one typed object, one getter. Defaults mirror package.json's
// `contributes.configuration` (a unit test checks they agree). No 'vscode' import: the
// caller hands in `vscode.workspace.getConfiguration('deer')` or any object with `get`.
import { DRAFTER_NAMES, type DrafterName } from '../engine/api';

export interface DeerConfig {
  /** Inline ghost-text completion on or off (Generate works either way). */
  enabled: boolean;
  /** Model folder; '' = the embedded models/default inside the extension. */
  modelPath: string;
  drafter: DrafterName;
  blockSize: number;
  inlineMaxNewTokens: number;
  generateMaxNewTokens: number;
  temperature: number;
  /** Pause after the last keystroke before an automatic request. */
  debounceMs: number;
  /** onnxruntime intra-op threads; 0 = engine default. */
  threads: number;
}

export const DEFAULT_CONFIG: Readonly<DeerConfig> = Object.freeze({
  enabled: true,
  modelPath: '',
  drafter: 'deer',
  blockSize: 16,
  inlineMaxNewTokens: 48,
  generateMaxNewTokens: 256,
  temperature: 0,
  debounceMs: 75,
  threads: 0,
});

/** Setting key (under `deer.`) of each field. */
export const CONFIG_KEYS: Readonly<Record<keyof DeerConfig, string>> = Object.freeze({
  enabled: 'enabled',
  modelPath: 'modelPath',
  drafter: 'drafter',
  blockSize: 'blockSize',
  inlineMaxNewTokens: 'inline.maxNewTokens',
  generateMaxNewTokens: 'generate.maxNewTokens',
  temperature: 'temperature',
  debounceMs: 'debounceMs',
  threads: 'threads',
});

export interface ConfigSource {
  get<T>(key: string): T | undefined;
}

const int = (v: unknown, lo: number, hi: number, dflt: number): number =>
  typeof v === 'number' && Number.isFinite(v) ? Math.min(hi, Math.max(lo, Math.round(v))) : dflt;

/** Reads `deer.*` settings, falling back to the defaults for anything missing or malformed. */
export function readConfig(src: ConfigSource): DeerConfig {
  const d = DEFAULT_CONFIG;
  const get = (k: keyof DeerConfig): unknown => src.get(CONFIG_KEYS[k]);
  const drafter = get('drafter');
  const temperature = get('temperature');
  const modelPath = get('modelPath');
  return {
    enabled: typeof get('enabled') === 'boolean' ? (get('enabled') as boolean) : d.enabled,
    modelPath: typeof modelPath === 'string' ? modelPath.trim() : d.modelPath,
    drafter: DRAFTER_NAMES.includes(drafter as DrafterName) ? (drafter as DrafterName) : d.drafter,
    blockSize: int(get('blockSize'), 1, 64, d.blockSize),
    inlineMaxNewTokens: int(get('inlineMaxNewTokens'), 1, 512, d.inlineMaxNewTokens),
    generateMaxNewTokens: int(get('generateMaxNewTokens'), 1, 4096, d.generateMaxNewTokens),
    temperature:
      typeof temperature === 'number' && Number.isFinite(temperature) ? Math.min(2, Math.max(0, temperature)) : d.temperature,
    debounceMs: int(get('debounceMs'), 0, 2000, d.debounceMs),
    threads: int(get('threads'), 0, 64, d.threads),
  };
}

/** The configured drafter if the model has it, else the model's default (say, 'deer' on a folder without a drafter). */
export function effectiveDrafter(wanted: DrafterName, available?: readonly DrafterName[], fallback?: DrafterName): DrafterName {
  if (!available || available.includes(wanted)) return wanted;
  return fallback && available.includes(fallback) ? fallback : available.includes('ngram') ? 'ngram' : 'none';
}

