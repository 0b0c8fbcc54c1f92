// Checks of verify.js that a browser run does not reach: the edge cases of strict Ed25519 and
// the Merkle functions against each other. Run: node channel-server/explorer/build/verify.test.mjs
import assert from 'node:assert/strict';
import { ed25519, sha512 } from '../vendor/noble.js';
import * as v from '../verify.js';

const Point = ed25519.Point;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const le = (b) => b.reduceRight((n, x) => (n << 8n) | BigInt(x), 0n);
const toLe = (n) => Uint8Array.from({ length: 32 }, (_, i) => Number((n >> BigInt(8 * i)) & 255n));
const cat = (...p) => Uint8Array.from(p.flatMap((x) => [...x]));

// A key pair as raw scalars, so signatures with chosen R can be made.
const a = 0x1234567890abcdefn % L;
const A = Point.BASE.multiply(a).toBytes();
const msg = v.utf8('keyggdrasil');

function signWith(rPoint, r) {
  const R = rPoint.toBytes();
  const k = le(sha512(cat(R, A, msg))) % L;
  return cat(R, toLe((r + k * a) % L));
}

// An honest signature verifies, and not for another message.
const r = 0xfeedn;
const good = signWith(Point.BASE.multiply(r), r);
assert.ok(v.verifyStrict(A, msg, good));
assert.ok(!v.verifyStrict(A, v.utf8('other'), good));

// S + L: the same equation, a non-canonical scalar: refused (dalek: S must be < L).
const s = le(good.subarray(32));
const big = s + L;
if (big < 2n ** 256n) {
  const high = cat(good.subarray(0, 32), toLe(big));
  assert.ok(!v.verifyStrict(A, msg, high));
}

// R with a torsion part: the cofactored equation (noble's own verify) holds, the cofactorless
// one (dalek's verify_strict, keyggdrasil) does not: refused.
// A point of order 8 (one of the eight torsion points' encodings).
const torsion = Point.fromBytes(v.fromHex('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa', 32));
assert.ok(torsion.isSmallOrder() && !torsion.is0());
const dirty = signWith(Point.BASE.multiply(r).add(torsion), r);
assert.ok(ed25519.verify(dirty, msg, A, { zip215: false }), 'noble accepts it (cofactored)');
assert.ok(!v.verifyStrict(A, msg, dirty), 'the strict rule refuses it');

// A small-order R (the identity) with S = k·a: refused.
const id = Point.ZERO.toBytes();
const kId = le(sha512(cat(id, A, msg))) % L;
assert.ok(!v.verifyStrict(A, msg, cat(id, toLe((kId * a) % L))));

// A small-order key is no key.
assert.ok(!v.isValidPublicKey(id));
assert.ok(!v.isValidPublicKey(torsion.toBytes()));
assert.ok(v.isValidPublicKey(A));

// Non-canonical encodings (y >= p) are refused as keys.
const p = 2n ** 255n - 19n;
assert.ok(!v.isValidPublicKey(toLe(p + 1n)));

// Merkle: every inclusion proof from a naive RFC 6962 prover leads to merkleRoot, for sizes 1..33.
function mth(leaves) {
  if (leaves.length === 1) return leaves[0];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return v.hashChildren(mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}
function path(m, leaves) {
  if (leaves.length === 1) return [];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return m < k
    ? [...path(m, leaves.slice(0, k)), mth(leaves.slice(k))]
    : [...path(m - k, leaves.slice(k)), mth(leaves.slice(0, k))];
}
for (let n = 1; n <= 33; n++) {
  const leaves = Array.from({ length: n }, (_, i) => v.hashLeaf(v.utf8(`entry ${i}`)));
  const root = v.merkleRoot(leaves);
  assert.equal(v.toHex(root), v.toHex(mth(leaves)), `size ${n}`);
  for (let i = 0; i < n; i++) {
    const pf = path(i, leaves);
    assert.ok(v.verifyInclusion(i, n, leaves[i], pf, root), `${i} of ${n}`);
    assert.ok(!v.verifyInclusion(i, n, v.hashLeaf(v.utf8('other')), pf, root));
    if (n > 1) assert.ok(!v.verifyInclusion((i + 1) % n, n, leaves[i], pf, root));
    if (pf.length > 0) assert.ok(!v.verifyInclusion(i, n, leaves[i], [...pf, pf[0]], root));
    if (pf.length > 0) assert.ok(!v.verifyInclusion(i, n, leaves[i], pf.slice(1), root));
  }
}
assert.equal(v.toHex(v.merkleRoot([])), '0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8');
console.log('verify.js: all checks passed');
