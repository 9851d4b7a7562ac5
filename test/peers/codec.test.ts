// The canonical encoding and the message validators: pure functions, checked in-process.
// (The channel that uses them is checked between real processes in network.test.ts.)
import '../../src/peers/net/polyfill.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decode, encode, EncodingError, type Value } from '../../src/peers/wire/canonical.js';
import { defineMessages, t } from '../../src/peers/wire/messages.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h.replace(/\s+/g, ''), 'hex'));

/** Decoded maps have a null prototype; compare as plain data. */
const plain = (v: Value): unknown =>
  v instanceof Uint8Array ? hex(v) : Array.isArray(v) ? v.map(plain) : v !== null && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x as Value)])) : v;

test('known encodings: the format is fixed, since signatures are made over it', () => {
  assert.equal(hex(encode(null)), '00');
  assert.equal(hex(encode(false)), '01');
  assert.equal(hex(encode(true)), '02');
  assert.equal(hex(encode(0)), '0300');
  assert.equal(hex(encode(300)), '03ac02');
  assert.equal(hex(encode(-1)), '0400');
  assert.equal(hex(encode(Number.MAX_SAFE_INTEGER)), '03ffffffffffffff0f');
  assert.equal(hex(encode('hé')), '0503' + '68c3a9');
  assert.equal(hex(encode(new Uint8Array([1, 2]))), '06020102');
  assert.equal(hex(encode([1, 'a'])), '07020301050161');
  // Keys sorted by their UTF-8 bytes whatever the insertion order; undefined means absent.
  assert.equal(hex(encode({ b: 1, a: null, c: undefined })), '0802' + '016100' + '01620301');
  assert.deepEqual(encode({ z: 1, a: 2 }), encode({ a: 2, z: 1 }));
});

test('encode refuses what has no single encoding', () => {
  for (const bad of [1.5, NaN, Infinity, 2 ** 53, -(2 ** 53), '\ud800', { ['\udc00']: 1 }, new Date(0), new Map(), [undefined]]) {
    assert.throws(() => encode(bad as unknown as Value), EncodingError, String(bad));
  }
  let deep: Value = 1;
  for (let i = 0; i < 40; i++) deep = [deep];
  assert.throws(() => encode(deep), /nested deeper/);
});

test('decode refuses every non-canonical or malformed input', () => {
  const cases: Record<string, string> = {
    'non-minimal integer': '038000',
    'non-minimal length': '05 80 00',
    'integer beyond 2^53-1': '03 ffffffffffffff1f',
    'unsorted keys': '0802 016203 00 016103 00',
    'duplicate keys': '0802 016103 00 016103 00',
    'trailing bytes': '0000',
    truncated: '0503 6162',
    'invalid UTF-8': '0502 c328',
    'unknown tag': '09',
    'array count beyond the end': '07 ffffffff0f 00',
    'map count beyond the end': '08 ffff03',
    empty: '',
  };
  for (const [what, h] of Object.entries(cases)) {
    assert.throws(() => decode(bytes(h)), EncodingError, what);
  }
  assert.throws(() => decode(bytes('0701'.repeat(40) + '00')), /nested deeper/);
  assert.deepEqual(plain(decode(bytes('0701'.repeat(32) + '00'))), JSON.parse('['.repeat(32) + 'null' + ']'.repeat(32)));
});

test('a "__proto__" key from the wire stays data', () => {
  const v = decode(bytes('0801 095f5f70726f746f5f5f 0801 0561646d696e 02')) as Record<string, Value>;
  assert.equal(Object.getPrototypeOf(v), null);
  assert.deepEqual(plain(v['__proto__'] as Value), { admin: true });
  assert.equal(({} as Record<string, unknown>)['admin'], undefined);
});

test('property: decode inverts encode, and re-encoding is byte-identical', () => {
  const { value } = fc.letrec<{ value: Value }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.constant(null),
      fc.boolean(),
      fc.maxSafeInteger(),
      fc.string({ unit: 'grapheme' }),
      fc.uint8Array({ maxLength: 64 }),
      fc.array(tie('value'), { maxLength: 5 }),
      fc.dictionary(fc.string({ unit: 'grapheme', maxLength: 8 }), tie('value'), { maxKeys: 5 }),
    ),
  }));
  fc.assert(
    fc.property(value, (v) => {
      const b = encode(v);
      const back = decode(b);
      assert.deepEqual(plain(back), plain(v));
      assert.deepEqual(encode(back), b);
    }),
    { numRuns: 500 },
  );
});

test('large byte strings survive the by-reference path', () => {
  const big = new Uint8Array(100_000).map((_, i) => i * 7);
  const v = decode(encode({ data: big, n: 1 })) as Record<string, Value>;
  assert.deepEqual(v['data'], big);
});

const Set1 = defineMessages({
  put: {
    id: t.bytes({ len: 32 }),
    data: t.bytes({ max: 1024 }),
    tags: t.array(t.str({ max: 8 }), { max: 3 }),
    size: t.uint({ max: 1000 }),
    delta: t.int({ min: -5, max: 5 }),
    kind: t.literal('file', 'dir'),
    note: t.optional(t.str()),
    parent: t.nullable(t.bytes({ len: 32 })),
    flag: t.bool(),
  },
  ping: {},
});

test('validators: a good message comes back typed, as plain data', () => {
  const msg = {
    type: 'put',
    id: new Uint8Array(32),
    data: new Uint8Array(10),
    tags: ['a', 'b'],
    size: 1000,
    delta: -5,
    kind: 'dir',
    parent: null,
    flag: false,
  } as const;
  const got = Set1.validate(decode(encode(msg)));
  assert.equal(got.type, 'put');
  if (got.type !== 'put') return;
  // Typed: these compile only because the validator's result type knows the fields.
  const size: number = got.size;
  const note: string | undefined = got.note;
  assert.equal(size, 1000);
  assert.equal(note, undefined);
  assert.equal(Object.getPrototypeOf(got), Object.prototype);
  assert.deepEqual(Set1.validate(decode(encode({ type: 'ping' }))), { type: 'ping' });
});

test('validators: each violation is refused with the field named', () => {
  const good = {
    type: 'put',
    id: new Uint8Array(32),
    data: new Uint8Array(10),
    tags: [],
    size: 1,
    delta: 0,
    kind: 'file',
    parent: null,
    flag: true,
  };
  const bad: Array<[Record<string, Value | undefined>, RegExp]> = [
    [{ type: 'nope' }, /unknown message type "nope"/],
    [{ ping: 1 }, /\$\.type: expected string, got missing/],
    [{ ...good, extra: 1 }, /unknown field "extra"/],
    [{ ...good, id: new Uint8Array(31) }, /\.id: 31 bytes, expected exactly 32/],
    [{ ...good, data: new Uint8Array(1025) }, /\.data: 1025 bytes, more than 1024/],
    [{ ...good, tags: ['a', 'b', 'c', 'd'] }, /\.tags: array of 4 items, more than 3/],
    [{ ...good, tags: ['toolongtag'] }, /\.tags\[0\]: string of 10 characters, more than 8/],
    [{ ...good, size: 1001 }, /\.size: 1001 is more than 1000/],
    [{ ...good, size: -1 }, /\.size: expected unsigned integer/],
    [{ ...good, delta: -6 }, /\.delta: -6 is less than -5/],
    [{ ...good, kind: 'link' }, /\.kind: expected one of file, dir/],
    [{ ...good, flag: 1 }, /\.flag: expected boolean, got number/],
    [{ ...good, parent: 'x' }, /\.parent: expected bytes, got string/],
    [{ ...good, note: 5 }, /\.note: expected string, got number/],
    [{ ...good, size: undefined }, /\.size: missing/],
  ];
  for (const [msg, re] of bad) assert.throws(() => Set1.validate(decode(encode(msg))), re, JSON.stringify(Object.keys(msg)));
  assert.throws(() => defineMessages({ x: { type: t.str() } }), /reserved/);
});

test('Promise.withResolvers exists (polyfilled on Node 20) and behaves', async () => {
  const P = Promise as unknown as { withResolvers<T>(): { promise: Promise<T>; resolve(v: T): void; reject(e: unknown): void } };
  const a = P.withResolvers<number>();
  a.resolve(7);
  assert.equal(await a.promise, 7);
  const b = P.withResolvers<number>();
  b.reject(new Error('no'));
  await assert.rejects(b.promise, /no/);
  assert.equal(Object.keys(Promise).includes('withResolvers'), false, 'not enumerable');
});
