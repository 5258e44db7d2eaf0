// The user's README (what the Extensions view shows): its Settings table is generated from
// package.json, its pictures exist and ship in the .vsix, and it keeps the two developer commands.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..', '..');
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

test('README settings are what scripts/readme-settings.mjs writes from package.json', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'readme-settings.mjs'), '--check'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr || r.stdout);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  for (const key of Object.keys(pkg.contributes.configuration.properties)) assert.ok(readme.includes(`\`${key}\``), `${key} is not in README.md`);
});

test('README pictures exist, are small, and ship in the .vsix; links point inside the package', () => {
  const images = [...readme.matchAll(/!\[[^\]]*\]\(([^)]+)\)/g)].map((m) => m[1]);
  assert.ok(images.length >= 3, `expected pictures of ghost text, status bar and stats view: ${images}`);
  const ignore = readFileSync(join(ROOT, '.vscodeignore'), 'utf8');
  for (const img of images) {
    const file = join(ROOT, img);
    assert.ok(existsSync(file), `${img} is missing`);
    assert.ok(statSync(file).size < 300_000, `${img} is ${statSync(file).size} bytes`);
    assert.ok(ignore.includes(`!${img}`) || ignore.includes('!media/screenshots/*.png'), `${img} is not shipped (.vscodeignore)`);
  }
  for (const [, href] of readme.matchAll(/(?<!!)\[[^\]]*\]\(([^)#]+)\)/g)) {
    if (/^https?:/.test(href)) continue;
    assert.ok(href.startsWith('models/default/') || href.startsWith('media/'), `relative link ${href} is not in the .vsix`);
    assert.ok(existsSync(join(ROOT, href)), `${href} is missing`);
  }
});

test('README keeps the two developer commands', () => {
  assert.match(readme, /npm run demo/);
  assert.match(readme, /npm test/);
});
