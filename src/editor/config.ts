// The extension's settings: one typed object, one getter. package.json's
// `contributes.configuration` is the only source of their keys, defaults and ranges: SETTINGS
// below says only which field reads which key as what kind of value (a unit test checks it covers
// the manifest). No 'vscode' import: the caller hands in `vscode.workspace.getConfiguration('deer')`
// or any object with `get`.
import manifest from '../../package.json';
import { availableDrafter, DRAFTER_NAMES, type CompletionRequest, type DrafterName, type ModelInfo } from '../engine/api';

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
  /** Tokens drafted per pass; 0 = the model's own (deer.json) or the drafter's default. */
  blockSize: number;
  /** deer: verify draft trees when the model supports them (off: chains). */
  draftTrees: boolean;
  /** deer: each pass also try the n-gram continuation from the document (CompletionRequest.lookup). */
  promptLookup: boolean;
  inlineMaxNewTokens: number;
  generateMaxNewTokens: number;
  temperature: number;
  /** Pause after the last keystroke before an automatic request. */
  debounceMs: number;
  /** onnxruntime intra-op threads; 0 = engine default. */
  threads: number;
}

/** How a setting's value is read: its manifest entry gives the default and, for numbers, the range. */
type Kind = 'boolean' | 'string' | 'path' | 'int' | 'number' | 'drafter' | 'languages';

/** Each field: its key under `deer.` and how it is read. */
export const SETTINGS: Readonly<Record<keyof DeerConfig, { key: string; kind: Kind }>> = Object.freeze({
  enabled: { key: 'enabled', kind: 'boolean' },
  languages: { key: 'inline.languages', kind: 'languages' },
  inlineMinConfidence: { key: 'inline.minConfidence', kind: 'number' },
  modelPath: { key: 'modelPath', kind: 'path' },
  drafter: { key: 'drafter', kind: 'drafter' },
  blockSize: { key: 'blockSize', kind: 'int' },
  draftTrees: { key: 'draftTrees', kind: 'boolean' },
  promptLookup: { key: 'promptLookup', kind: 'boolean' },
  inlineMaxNewTokens: { key: 'inline.maxNewTokens', kind: 'int' },
  generateMaxNewTokens: { key: 'generate.maxNewTokens', kind: 'int' },
  temperature: { key: 'temperature', kind: 'number' },
  debounceMs: { key: 'debounceMs', kind: 'int' },
  threads: { key: 'threads', kind: 'int' },
});

interface ManifestSetting {
  default: unknown;
  minimum?: number;
  maximum?: number;
  enum?: readonly string[];
}
const PROPERTIES = manifest.contributes.configuration.properties as Record<string, ManifestSetting>;

/** The manifest entry of a field (a missing one is a packaging bug: fail loudly at load). */
export function manifestEntry(field: keyof DeerConfig): ManifestSetting {
  const p = PROPERTIES[`deer.${SETTINGS[field].key}`];
  if (!p) throw new Error(`package.json lacks the setting deer.${SETTINGS[field].key}`);
  return p;
}

export interface ConfigSource {
  get<T>(key: string): T | undefined;
}

/** One value as its kind reads it; anything missing or malformed is the default. */
function readValue(field: keyof DeerConfig, v: unknown): unknown {
  const p = manifestEntry(field);
  const lo = p.minimum ?? -Infinity;
  const hi = p.maximum ?? Infinity;
  const finite = typeof v === 'number' && Number.isFinite(v);
  switch (SETTINGS[field].kind) {
    case 'boolean':
      return typeof v === 'boolean' ? v : p.default;
    case 'string':
      return typeof v === 'string' ? v : p.default;
    case 'path':
      return typeof v === 'string' ? v.trim() : p.default;
    case 'int':
      return finite ? Math.min(hi, Math.max(lo, Math.round(v))) : p.default;
    case 'number':
      return finite ? Math.min(hi, Math.max(lo, v)) : p.default;
    case 'drafter':
      return DRAFTER_NAMES.includes(v as DrafterName) ? v : p.default;
    case 'languages':
      return readLanguages(v, p.default as Record<string, boolean>);
  }
}

/** Reads `deer.*` settings, falling back to package.json's defaults for anything missing or malformed. */
export function readConfig(src: ConfigSource): DeerConfig {
  const out: Record<string, unknown> = {};
  for (const field of Object.keys(SETTINGS) as (keyof DeerConfig)[]) out[field] = readValue(field, src.get(SETTINGS[field].key));
  return out as unknown as DeerConfig;
}

/** Every setting at its default (package.json). */
export const DEFAULT_CONFIG: Readonly<DeerConfig> = Object.freeze(readConfig({ get: () => undefined }));

/** The map's boolean entries; anything else is dropped, and a map without '*' keeps the default's '*'. */
function readLanguages(v: unknown, dflt: Readonly<Record<string, boolean>>): Readonly<Record<string, boolean>> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return Object.freeze({ ...dflt });
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

/**
 * The request fields the settings decide, the same for inline completion and Generate: the
 * configured drafter, or the engine's fallback for it when the model lacks it (availableDrafter:
 * the one fallback table); the block size only when set (0 leaves it to deer.json and the
 * drafter's default); prompt lookup as set (the engine uses it with deer only).
 */
export function requestSettings(
  cfg: DeerConfig,
  info?: Pick<ModelInfo, 'drafters'>,
): Pick<CompletionRequest, 'drafter' | 'blockSize' | 'treeBudget' | 'lookup' | 'temperature'> {
  return {
    drafter: info ? availableDrafter(cfg.drafter, info.drafters) : cfg.drafter,
    blockSize: cfg.blockSize > 0 ? cfg.blockSize : undefined,
    treeBudget: cfg.draftTrees ? undefined : 0,
    lookup: cfg.promptLookup,
    temperature: cfg.temperature,
  };
}
