// Shared helpers for the engine tests: where the repository, the fixtures and the eval data are.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';

/** Repository root (tests run from dist/test/engine/). */
export const ROOT = resolve(__dirname, '..', '..', '..');
/** The tiny model folder made by training/make_fixture.py (DEER_TEST_MODEL overrides). */
export const TINY_MODEL = process.env.DEER_TEST_MODEL ?? resolve(ROOT, 'test', 'fixtures', 'tiny-model');
/** The tiny model with weight-only int8 ONNX files, as models/default ships (training/make_fixture.py --int8-only). */
export const INT8_MODEL = resolve(ROOT, 'test', 'fixtures', 'samples', 'tiny-model-int8');
/** The tiny model's verifier quantized per tensor by onnxruntime's quantize_dynamic (not exact). */
export const PER_TENSOR_VERIFIER = resolve(ROOT, 'test', 'fixtures', 'samples', 'per-tensor-int8.onnx');
/** The same verifier with int8 activations as training/export.py computes draft models (DynamicQuantizeMatMul). */
export const INT8_ACTIVATIONS_VERIFIER = resolve(ROOT, 'test', 'fixtures', 'samples', 'int8-activations.onnx');
/** A tiny random model whose drafter is conditioned on context, hidden states and suffix. */
export const CONDITIONED_MODEL = resolve(ROOT, 'test', 'fixtures', 'samples', 'conditioned-model');
export const DEFAULT_MODEL = resolve(ROOT, 'models', 'default');
/** The shared eval prompts (MultiPL-E MBPP), outside the repository; DEER_EVAL_DIR overrides. */
export const EVAL_DIR = process.env.DEER_EVAL_DIR ?? resolve(ROOT, '..', 'shared', 'eval');

export const hasModel = (dir: string) => existsSync(resolve(dir, 'config.json')) && existsSync(resolve(dir, 'tokenizer.json'));

/** The repository's own prompts, one file per language (used when ../shared/eval is absent). */
export const SAMPLE_PROMPTS = resolve(ROOT, 'test', 'fixtures', 'samples');

/** The eval file's path, or the repository's own prompts in its language when ../shared/eval is absent. */
export function promptsFile(file: string): string {
  const shared = resolve(EVAL_DIR, file);
  if (existsSync(shared)) return shared;
  const sample = resolve(SAMPLE_PROMPTS, `prompts-${/-(ts|py|js)-/.exec(file)?.[1]}.jsonl`);
  if (!existsSync(sample)) throw new Error(`no prompts: neither ${shared} nor ${sample} exists`);
  return sample;
}

/**
 * The first `n` prompts of an eval file (`mbpp-ts-reworded.jsonl`, ...) in ../shared/eval; when
 * that folder is absent (a plain clone), the repository's own prompts in the same language
 * (test/fixtures/samples/prompts-ts.jsonl, prompts-py.jsonl), so no test goes without prompts.
 */
export function evalPrompts(file: string, n: number): { name: string; prompt: string }[] {
  return readFileSync(promptsFile(file), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .slice(0, n)
    .map((l) => JSON.parse(l));
}
