import assert from 'node:assert/strict';
import test from 'node:test';
import { firstWordRight, isRight } from '../../src/cli/rightSuggestion';

test('confidence calibration: a suggestion is right when the file continues with its first line', () => {
  assert.equal(isRight('total + 1;\n  return x;', 'total + 1;\n  return y;'), true, 'only the first line counts');
  assert.equal(isRight('total + 2;', 'total + 1;\n'), false);
  assert.equal(isRight('\n  return total;', '\n  return total;\n}'), true, 'a suggestion on the next line');
  assert.equal(isRight('\n  return total;', '\n  return sum;\n}'), false);
  assert.equal(isRight(');', ');\n'), false, 'fewer than 3 non-blank characters say nothing');
  assert.equal(isRight('', 'x'), false);
});

test('confidence calibration: the first word is right when the suggestion starts with the whole of it', () => {
  assert.equal(firstWordRight('total + 2;', 'total + 1;'), true);
  assert.equal(firstWordRight('totals;', 'total + 1;'), false, 'a longer word is another word');
  assert.equal(firstWordRight('tot', 'total'), false);
  assert.equal(firstWordRight(' = 2;', ' = 1;'), true, 'punctuation: its first character');
  assert.equal(firstWordRight('\n  return x;', '\n  return y;'), true);
  assert.equal(firstWordRight('\n    return x;', '\n  return y;'), false, 'the indent counts');
  assert.equal(firstWordRight('', 'x'), false);
});
