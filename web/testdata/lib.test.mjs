// Unit tests of the app's pure modules, run with Node's test runner (web_test.go runs them when
// node is installed): node --test web/testdata/
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { canonicalize, canonicalSHA256, CanonicalizationError, serializeNumber } from '../static/lib/jcs.js';
import { checkView, flatten, stripControls } from '../static/lib/display.js';
import { b64u, fromB64u } from '../static/lib/b64.js';
import { vectors } from './vectors.mjs';

test('docs/device-api.md 8.4: canonical JSON and shown_sha256 of the worked example and the two extra vectors', async () => {
  for (const v of vectors) {
    const shown = JSON.parse(v.shown);
    assert.equal(canonicalize(shown), v.canonical, v.name);
    assert.equal(await canonicalSHA256(shown), v.sha256, v.name);
  }
});

test('RFC 8785 appendix B: numbers from their IEEE-754 bits', () => {
  const cases = [
    ['0000000000000000', '0'], ['8000000000000000', '0'], ['0000000000000001', '5e-324'],
    ['8000000000000001', '-5e-324'], ['7fefffffffffffff', '1.7976931348623157e+308'],
    ['ffefffffffffffff', '-1.7976931348623157e+308'], ['4340000000000000', '9007199254740992'],
    ['c340000000000000', '-9007199254740992'], ['4430000000000000', '295147905179352830000'],
    ['44b52d02c7e14af5', '9.999999999999997e+22'], ['44b52d02c7e14af6', '1e+23'],
    ['44b52d02c7e14af7', '1.0000000000000001e+23'], ['444b1ae4d6e2ef4e', '999999999999999700000'],
    ['444b1ae4d6e2ef4f', '999999999999999900000'], ['444b1ae4d6e2ef50', '1e+21'],
    ['3eb0c6f7a0b5ed8c', '9.999999999999997e-7'], ['3eb0c6f7a0b5ed8d', '0.000001'],
    ['41b3de4355555553', '333333333.3333332'], ['41b3de4355555554', '333333333.33333325'],
    ['41b3de4355555555', '333333333.3333333'], ['41b3de4355555556', '333333333.3333334'],
    ['41b3de4355555557', '333333333.33333343'], ['becbf647612f3696', '-0.0000033333333333333333'],
    ['43143ff3c1cb0959', '1424953923781206.2'],
  ];
  for (const [bits, want] of cases) {
    const n = new DataView(Uint8Array.from(bits.match(/../g).map((x) => parseInt(x, 16))).buffer).getFloat64(0);
    assert.equal(serializeNumber(n), want, bits);
  }
  for (const bits of ['7fffffffffffffff', '7ff0000000000000', 'fff0000000000000']) {
    const n = new DataView(Uint8Array.from(bits.match(/../g).map((x) => parseInt(x, 16))).buffer).getFloat64(0);
    assert.throws(() => serializeNumber(n), CanonicalizationError, bits);
  }
});

test('RFC 8785 3.2.3: the example with numbers, escapes and literals', () => {
  const input = JSON.parse('{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
    + ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", "literals": [null, true, false]}');
  assert.equal(canonicalize(input),
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
    + '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}');
});

test('RFC 8785 3.2.3: members sorted by UTF-16 code units', () => {
  const input = JSON.parse('{"\\u20ac": "Euro Sign", "\\r": "Carriage Return", "\\ufb33": "Hebrew Letter Dalet With Dagesh",'
    + ' "1": "One", "\\ud83d\\ude00": "Emoji: Grinning Face", "\\u0080": "Control", "\\u00f6": "Latin Small Letter O With Diaeresis"}');
  // (Not through Object.keys, which lists integer-like names such as "1" first.)
  assert.equal(canonicalize(input), '{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
    + '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face",'
    + '"\ufb33":"Hebrew Letter Dalet With Dagesh"}');
});

test('strings: only the minimal escapes, lowercase hex, U+007F and U+2028 as themselves', () => {
  assert.equal(canonicalize('\u0000\u001f\u007f\u2028\u2029"\\/\b\f\n\r\t<>&é'),
    '"\\u0000\\u001f\u007f\u2028\u2029\\"\\\\/\\b\\f\\n\\r\\t<>&é"');
});

test('values with no canonical form are refused', () => {
  for (const bad of [NaN, Infinity, '\ud800', 'a\udc00b', { a: undefined }, () => 1, new Date(0), 1n]) {
    assert.throws(() => canonicalize(bad), CanonicalizationError);
  }
  assert.equal(canonicalize(-0), '0');
  assert.equal(canonicalize([[], {}, [{}]]), '[[],{},[{}]]');
});

test('base64url round trip', () => {
  const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
  assert.equal(b64u(new Uint8Array([0xfb, 0xff])), '-_8');
  assert.deepEqual(fromB64u(b64u(bytes)), bytes);
  assert.throws(() => fromB64u('a b'));
});

test('flatten follows the server: sorted paths, [i], "[]", nested "{}", null, numbers kept as numbers', () => {
  const got = flatten({ type: 't', b: { y: [], x: {} }, a: [1, { z: null }], s: 'x\u202e\ny', t: true });
  assert.deepEqual(got, [
    { path: 'a[0]', value: 1 }, { path: 'a[1].z', value: 'null' },
    { path: 'b.x', value: '{}' }, { path: 'b.y', value: '[]' },
    { path: 's', value: 'x y' }, { path: 't', value: 'true' }, { path: 'type', value: 't' },
  ]);
  assert.equal(stripControls('a\u0085b\u061cc\ufffd'), 'a bc ');
});

function exampleView() {
  const v = JSON.parse(vectors[0].view);
  return v;
}

test('checkView accepts the worked example and keeps the values as the server wrote them', () => {
  const { problems, details } = checkView(exampleView());
  assert.deepEqual(problems, []);
  assert.equal(details.length, 2);
  assert.equal(details[0].text, 'SELL 5 BRK.B (limit)');
  assert.deepEqual(details[0].rows.find((r) => r.path === 'limit_price'), { path: 'limit_price', value: '135.50', unlisted: false, note: '' });
});

test('checkView refuses rendered fields that are not the signed content', () => {
  const cases = {
    'a changed value': (v) => { v.rendered[0].fields.find((f) => f.path === 'limit_price').value = '13.55'; },
    'a hidden field': (v) => { v.rendered[0].fields = v.rendered[0].fields.filter((f) => f.path !== 'limit_price'); },
    'an invented field': (v) => { v.rendered[0].fields.push({ path: 'note', value: 'x' }); },
    'another client name': (v) => { v.client.name = 'Trusted Bank'; },
    'another binding message': (v) => { v.binding_message = 'Buy 1 share'; },
    'another audience': (v) => { v.audience = []; },
    'a missing detail': (v) => { v.rendered.pop(); },
    'a number that is not JSON': (v) => { v.rendered[0].fields.find((f) => f.path === 'quantity').value = '0x5'; },
  };
  for (const [name, mutate] of Object.entries(cases)) {
    const v = exampleView();
    mutate(v);
    assert.notDeepEqual(checkView(v).problems, [], name);
  }
});

test('checkView notes numbers the signature cannot hold exactly', () => {
  const v = JSON.parse(vectors[2].view);
  const { problems, details } = checkView(v);
  assert.deepEqual(problems, []);
  assert.match(details[0].rows.find((r) => r.path === 'quantity').note, /9007199254740992/);
});
