// The explorer's checks, as pure functions over bytes: no DOM, no network, no clock.
//
// Each one is the browser's copy of a check keyggdrasil makes (named beside it), over the exact
// bytes that travelled. They decide only what they say: a signature, a leaf hash, an inclusion
// proof, a checkpoint. Whether a key was allowed to sign an event (the key-state rules) is not
// checked here: that stays in one place, keyggdrasil::state, which every site runs.

import { ed25519, blake2b, sha512 } from './vendor/noble.js';

const Point = ed25519.Point;
/** The order of the Ed25519 prime-order subgroup. */
const L = 2n ** 252n + 27742317777372353535851937790883648493n;

/** Signature contexts (keyggdrasil::protocol::Context::as_str). */
export const CONTEXT = {
  keyEvent: 'keyggdrasil/v1/key-event',
  release: 'keyggdrasil/v1/release-event',
  releaseRevocation: 'keyggdrasil/v1/release-revocation',
  attestation: 'keyggdrasil/v1/attestation',
  rollout: 'keyggdrasil/v1/rollout',
  checkpoint: 'keyggdrasil/v1/checkpoint',
};

/** The context of an event kind (keyggdrasil::entry::Event::context). */
export function eventContext(type) {
  switch (type) {
    case 'master_key':
    case 'signing_key':
    case 'key_revocation':
      return CONTEXT.keyEvent;
    case 'release':
      return CONTEXT.release;
    case 'release_revocation':
      return CONTEXT.releaseRevocation;
    case 'attestation':
      return CONTEXT.attestation;
    case 'rollout':
      return CONTEXT.rollout;
    default:
      return null;
  }
}

const encoder = new TextEncoder();

/** UTF-8 bytes of a string. */
export function utf8(text) {
  return encoder.encode(text);
}

/** Lowercase hex of bytes. */
export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Bytes of exactly `len` bytes of lowercase hex (keyggdrasil::encoding), or null. */
export function fromHex(text, len) {
  if (typeof text !== 'string' || text.length !== 2 * len || !/^[0-9a-f]*$/.test(text)) {
    return null;
  }
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

function littleEndian(bytes) {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]);
  return n;
}

/** A point from a canonical encoding (y < p), or null. */
function point(bytes) {
  try {
    return Point.fromBytes(bytes, false);
  } catch {
    return null;
  }
}

/**
 * Whether 32 bytes are a public key keyggdrasil accepts (keyggdrasil::keys::PublicKey): a
 * canonical encoding of a point that is not of small order.
 */
export function isValidPublicKey(bytes) {
  const a = bytes && bytes.length === 32 ? point(bytes) : null;
  return a !== null && !a.isSmallOrder();
}

/**
 * Strict Ed25519 (RFC 8032 encodings), the rule of ed25519-dalek's `verify_strict`, which
 * keyggdrasil::keys::PublicKey::verify_strict uses: the key and R are canonical and not of small
 * order, S < L, and the cofactorless equation holds as bytes: encode([S]B - [k]A) == R, with
 * k = SHA-512(R ‖ A ‖ M) mod L. (noble's own `verify` checks the cofactored equation, which
 * accepts some signatures whose R has a torsion part; this refuses them, like the channel.)
 */
export function verifyStrict(publicKey, message, signature) {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  const rBytes = signature.subarray(0, 32);
  const a = point(publicKey);
  const r = point(rBytes);
  if (a === null || r === null || a.isSmallOrder() || r.isSmallOrder()) return false;
  const s = littleEndian(signature.subarray(32));
  if (s >= L) return false;
  const k = littleEndian(sha512(concat(rBytes, publicKey, message))) % L;
  const expected = Point.BASE.multiplyUnsafe(s).subtract(a.multiplyUnsafe(k));
  return equal(expected.toBytes(), rBytes);
}

/** `context ‖ 0x00 ‖ message` (keyggdrasil::protocol::signed_bytes). */
export function signedBytes(context, message) {
  return concat(utf8(context), new Uint8Array([0]), message);
}

/** A protocol signature (keyggdrasil::protocol::verify). */
export function verifyProtocol(publicKey, context, message, signature) {
  return verifyStrict(publicKey, signedBytes(context, message), signature);
}

function blake2b256(...parts) {
  return blake2b(concat(...parts), { dkLen: 32 });
}

/** `BLAKE2b-256(0x00 ‖ entry)` (keyggdrasil::merkle::Blake2b256::hash_leaf). */
export function hashLeaf(entry) {
  return blake2b256(new Uint8Array([0]), entry);
}

/** `BLAKE2b-256(0x01 ‖ left ‖ right)` (hash_children). */
export function hashChildren(left, right) {
  return blake2b256(new Uint8Array([1]), left, right);
}

/**
 * The root an inclusion proof leads to (RFC 9162 §2.1.3.2, keyggdrasil::merkle::verify_inclusion),
 * or null if the proof has the wrong length for `index` and `size`.
 */
export function rootFromInclusionProof(index, size, leafHash, path) {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) {
    return null;
  }
  // BigInt, so the shifts are right for any log size.
  let fnode = BigInt(index);
  let snode = BigInt(size - 1);
  let r = leafHash;
  for (const p of path) {
    if (snode === 0n) return null;
    if ((fnode & 1n) === 1n || fnode === snode) {
      r = hashChildren(p, r);
      while ((fnode & 1n) === 0n && fnode !== 0n) {
        fnode >>= 1n;
        snode >>= 1n;
      }
    } else {
      r = hashChildren(r, p);
    }
    fnode >>= 1n;
    snode >>= 1n;
  }
  return snode === 0n ? r : null;
}

/** Whether `path` proves `leafHash` at `index` in the tree of `size` with `root`. */
export function verifyInclusion(index, size, leafHash, path, root) {
  const got = rootFromInclusionProof(index, size, leafHash, path);
  return got !== null && equal(got, root);
}

/**
 * The RFC 6962 tree head of all leaves (MTH: the left subtree is the largest power of two
 * below n). Built bottom-up with a stack of complete subtrees, in O(n) hashes.
 */
export function merkleRoot(leafHashes) {
  if (leafHashes.length === 0) return blake2b256();
  // stack[i] = [height, hash] of complete subtrees, heights strictly decreasing.
  const stack = [];
  for (const leaf of leafHashes) {
    let node = [0, leaf];
    while (stack.length > 0 && stack[stack.length - 1][0] === node[0]) {
      const left = stack.pop();
      node = [node[0] + 1, hashChildren(left[1], node[1])];
    }
    stack.push(node);
  }
  // The rightmost, smaller subtrees join from the right.
  let root = stack.pop()[1];
  while (stack.length > 0) root = hashChildren(stack.pop()[1], root);
  return root;
}

/**
 * Verifies the channel's JSON checkpoint (keyggdrasil::wire::verify_checkpoint): a `Signed`
 * object `{payload, signature}` signed by the channel key over `keyggdrasil/v1/checkpoint ‖
 * 0x00 ‖ payload`, of protocol version 1. Returns `{ok, checkpoint, problem}`; `checkpoint`
 * (parsed after the signature check) is there to show even when `ok` is false, when it parses.
 */
export function verifyCheckpoint(signed, channelKey) {
  const result = { ok: false, checkpoint: null, problem: null };
  if (!signed || typeof signed.payload !== 'string') {
    result.problem = 'not a signed checkpoint';
    return result;
  }
  const sig = fromHex(signed.signature, 64);
  let cp = null;
  try {
    cp = JSON.parse(signed.payload);
  } catch {
    cp = null;
  }
  const root = cp ? fromHex(cp.root, 32) : null;
  if (cp && root && Number.isSafeInteger(cp.size) && cp.size >= 0) {
    result.checkpoint = { origin: String(cp.origin), size: cp.size, time: cp.time, root };
  }
  if (!sig || !verifyProtocol(channelKey, CONTEXT.checkpoint, utf8(signed.payload), sig)) {
    result.problem = 'the signature is not the channel key\u2019s';
  } else if (!result.checkpoint) {
    result.problem = 'the signed payload is not a checkpoint';
  } else if (cp.v !== 1) {
    result.problem = `protocol version ${cp.v} is not supported`;
  } else {
    result.ok = true;
  }
  return result;
}

/**
 * Splits entry text `body ‖ 0x0A ‖ 128 hex signature` (keyggdrasil::entry::Entry::parse's
 * framing) and parses the body. Returns `{bytes, bodyBytes, body, signature}` or null.
 */
export function parseEntry(text) {
  if (typeof text !== 'string') return null;
  const bytes = utf8(text);
  const nl = text.indexOf('\n');
  if (nl < 0 || text.indexOf('\n', nl + 1) >= 0) return null;
  const signature = fromHex(text.slice(nl + 1), 64);
  let body = null;
  try {
    body = JSON.parse(text.slice(0, nl));
  } catch {
    return null;
  }
  if (!signature || !body || typeof body !== 'object' || !body.event) return null;
  return { bytes, bodyBytes: utf8(text.slice(0, nl)), body, signature };
}

/** Whether a parsed entry's signature verifies under `body.signer` with its event's context. */
export function entrySignatureIsValid(entry) {
  const signer = fromHex(entry.body.signer, 32);
  const context = eventContext(entry.body.event.type);
  return (
    signer !== null &&
    context !== null &&
    isValidPublicKey(signer) &&
    verifyProtocol(signer, context, entry.bodyBytes, entry.signature)
  );
}

/**
 * Everything the explorer checks of one logged entry against a verified checkpoint: its
 * framing, its own signature, and its inclusion proof (hex hashes) at `index` against the
 * checkpoint's root. `checkpointOk` false makes the entry unverified whatever else holds: a
 * root the channel key did not sign proves nothing.
 */
export function verifyLoggedEntry(text, index, pathHex, checkpoint, checkpointOk) {
  const out = { ok: false, entry: parseEntry(text), signature: false, inclusion: false };
  if (!out.entry) return out;
  out.signature = entrySignatureIsValid(out.entry);
  out.leafHash = hashLeaf(out.entry.bytes);
  const path = Array.isArray(pathHex) ? pathHex.map((h) => fromHex(h, 32)) : [null];
  if (checkpoint && !path.includes(null)) {
    out.inclusion = verifyInclusion(index, checkpoint.size, out.leafHash, path, checkpoint.root);
  }
  out.ok = checkpointOk && out.signature && out.inclusion;
  return out;
}
