// Entry point of the VS Code suite, shared by both runners:
//  - @vscode/test-electron calls run() (extensionTestsPath = dist/test/vscode/suite/index.js);
//  - the code-server harness extension calls runSuite() and writes the results to a file.
// Mocha is loaded at run time from the repo's node_modules (not bundled: its parallel-mode
// files use require.resolve, which esbuild cannot bundle). The tests are registered by a plain
// function call, so nothing depends on mocha loading test files.
import type MochaType from 'mocha';
import { createRequire } from 'node:module';
import { registerDeerTests } from './deer.test';

// A require that esbuild leaves to Node at run time.
const nodeRequire = createRequire(__filename);

export interface TestResult {
  title: string;
  state: 'passed' | 'failed' | 'pending';
  durationMs: number;
  error?: string;
}

export interface SuiteResults {
  passed: number;
  failed: number;
  pending: number;
  tests: TestResult[];
}

export function runSuite(log: (line: string) => void = (l) => console.log(l)): Promise<SuiteResults> {
  const Mocha: typeof MochaType = nodeRequire('mocha');
  const mocha = new Mocha({ ui: 'tdd', timeout: 180_000, reporter: Mocha.reporters.Base });
  // Expose suite()/test()/setup()... on the global object, then register the tests.
  mocha.suite.emit('pre-require', globalThis, 'deer.test.ts', mocha);
  registerDeerTests(log);
  const results: SuiteResults = { passed: 0, failed: 0, pending: 0, tests: [] };
  return new Promise((resolve) => {
    const runner = mocha.run(() => {
      // A failed hook skips the tests after it: count each of those as failed too, so the
      // summary always names every test.
      const seen = new Set(results.tests.map((t) => t.title));
      const hookFailure = results.tests.find((t) => t.state === 'failed' && /"before all" hook/.test(t.title));
      const walk = (s: MochaType.Suite): void => {
        for (const t of s.tests) {
          if (seen.has(t.fullTitle())) continue;
          const error = `not run${hookFailure ? ' (a "before all" hook failed)' : ''}`;
          results.failed++;
          results.tests.push({ title: t.fullTitle(), state: 'failed', durationMs: 0, error });
          log(`  FAIL ${t.fullTitle()} (${error})`);
        }
        s.suites.forEach(walk);
      };
      walk(mocha.suite);
      resolve(results);
    });
    runner.on('test end', (t: MochaType.Test) => {
      if (t.state === 'passed') {
        results.passed++;
        results.tests.push({ title: t.fullTitle(), state: 'passed', durationMs: t.duration ?? 0 });
        log(`  ok   ${t.fullTitle()} (${t.duration ?? 0} ms)`);
      } else if (t.isPending()) {
        results.pending++;
        results.tests.push({ title: t.fullTitle(), state: 'pending', durationMs: 0 });
        log(`  skip ${t.fullTitle()}`);
      }
    });
    runner.on('fail', (t: MochaType.Runnable, err: Error) => {
      results.failed++;
      const msg = err && (err.stack || err.message) ? String(err.stack || err.message) : String(err);
      results.tests.push({ title: t.fullTitle(), state: 'failed', durationMs: t.duration ?? 0, error: msg });
      log(`  FAIL ${t.fullTitle()}\n${msg.split('\n').map((l) => '       ' + l).join('\n')}`);
    });
  });
}

/** @vscode/test-electron's contract: resolve when all passed, reject otherwise. */
export async function run(): Promise<void> {
  const r = await runSuite();
  console.log(`${r.passed} passed, ${r.failed} failed`);
  if (r.failed > 0) throw new Error(`${r.failed} VS Code test(s) failed`);
}
