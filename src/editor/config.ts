// The extension's settings: one typed object, one getter. Defaults mirror package.json's
// `contributes.configuration` (a unit test checks they agree). No 'vscode' import: the
// caller hands in `vscode.workspace.getConfiguration('deer')` or any object with `get`.
import { DRAFTER_NAMES, type DrafterName } from '../engine/api';

export interface DeerConfig {
  /** Inline ghost-text completion on or off (Generate works either way). */
  enabled: boolean;
  /** Inline completion per VS Code language id; '*' covers every language not named. */
  languages: Readonly<Record<string, boolean>>;
  /** Automatic suggestions below this confidence (suggestionConfidence, 0-1) are not shown; Alt+\ shows them anyway. */
  inlineMinConfidence: number;
  /** Model folder; '' = the embedded models/default inside the extension. */
  modelPath: string;
  drafter: DrafterName;
  blockSize: number;
  /** deer: verify draft trees when the model supports them (off: chains). */
  draftTrees: boolean;
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
  languages: Object.freeze({ '*': true, plaintext: false, markdown: false, scminput: false }),
  inlineMinConfidence: 0.15,
  modelPath: '',
  drafter: 'deer',
  blockSize: 16,
  draftTrees: true,
  inlineMaxNewTokens: 48,
  generateMaxNewTokens: 256,
  temperature: 0,
  debounceMs: 75,
  threads: 0,
});

/** Setting key (under `deer.`) of each field. */
export const CONFIG_KEYS: Readonly<Record<keyof DeerConfig, string>> = Object.freeze({
  enabled: 'enabled',
  languages: 'inline.languages',
  inlineMinConfidence: 'inline.minConfidence',
  modelPath: 'modelPath',
  drafter: 'drafter',
  blockSize: 'blockSize',
  draftTrees: 'draftTrees',
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
  const minConfidence = get('inlineMinConfidence');
  return {
    enabled: typeof get('enabled') === 'boolean' ? (get('enabled') as boolean) : d.enabled,
    languages: readLanguages(get('languages'), d.languages),
    inlineMinConfidence:
      typeof minConfidence === 'number' && Number.isFinite(minConfidence) ? Math.min(1, Math.max(0, minConfidence)) : d.inlineMinConfidence,
    modelPath: typeof modelPath === 'string' ? modelPath.trim() : d.modelPath,
    drafter: DRAFTER_NAMES.includes(drafter as DrafterName) ? (drafter as DrafterName) : d.drafter,
    blockSize: int(get('blockSize'), 1, 64, d.blockSize),
    draftTrees: typeof get('draftTrees') === 'boolean' ? (get('draftTrees') as boolean) : d.draftTrees,
    inlineMaxNewTokens: int(get('inlineMaxNewTokens'), 1, 512, d.inlineMaxNewTokens),
    generateMaxNewTokens: int(get('generateMaxNewTokens'), 1, 4096, d.generateMaxNewTokens),
    temperature:
      typeof temperature === 'number' && Number.isFinite(temperature) ? Math.min(2, Math.max(0, temperature)) : d.temperature,
    debounceMs: int(get('debounceMs'), 0, 2000, d.debounceMs),
    threads: int(get('threads'), 0, 64, d.threads),
  };
}

/** The map's boolean entries; anything else is dropped, and a map without '*' keeps the default's '*'. */
function readLanguages(v: unknown, dflt: Readonly<Record<string, boolean>>): Readonly<Record<string, boolean>> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return dflt;
  const out: Record<string, boolean> = {};
  for (const [k, on] of Object.entries(v)) if (typeof on === 'boolean') out[k] = on;
  if (!('*' in out)) out['*'] = dflt['*'] ?? true;
  return out;
}

/** Whether inline completion is on for a document of this language id (Copilot's `enable` map semantics). */
export function inlineEnabledFor(config: Pick<DeerConfig, 'enabled' | 'languages'>, languageId: string): boolean {
  if (!config.enabled) return false;
  return config.languages[languageId] ?? config.languages['*'] ?? true;
}

/** The configured drafter if the model has it, else the model's default (say, 'deer' on a folder without a drafter). */
export function effectiveDrafter(wanted: DrafterName, available?: readonly DrafterName[], fallback?: DrafterName): DrafterName {
  if (!available || available.includes(wanted)) return wanted;
  return fallback && available.includes(fallback) ? fallback : available.includes('ngram') ? 'ngram' : 'none';
}

