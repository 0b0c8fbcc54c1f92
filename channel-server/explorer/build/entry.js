// The only library code the explorer uses, re-exported for one bundle (../vendor/noble.js).
// @noble/curves: the Ed25519 group (points, scalars), so verify.js can check signatures with
// exactly the strict rule keyggdrasil uses (ed25519-dalek's verify_strict).
// @noble/hashes: BLAKE2b (the log's tree hash) and SHA-512 (inside Ed25519).
export { ed25519 } from '@noble/curves/ed25519.js';
export { blake2b } from '@noble/hashes/blake2.js';
export { sha512 } from '@noble/hashes/sha2.js';
