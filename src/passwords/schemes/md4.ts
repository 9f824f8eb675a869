/**
 * MD4 (RFC 1320) and the Windows NT hash, MD4(UTF-16LE(password)).
 *
 * Node's OpenSSL 3 keeps MD4 in the "legacy" provider, which Node does not
 * load (crypto.createHash('md4') throws "unsupported"), so MD4 comes from the
 * maintained `hash-wasm` package (WebAssembly, no native build).
 *
 * The `nt` scheme takes the 32-hex-digit NT hash, bare or in FreeBSD's
 * crypt(3) form "$3$$<hex>" (as `mkpasswd -m nt` writes it). The two differ
 * for non-ASCII passwords: Windows (and passlib's nthash) hash the UTF-16LE
 * encoding of the text, while FreeBSD's and libxcrypt's crypt-nthash widen
 * each byte of the password (here its UTF-8 bytes) to 16 bits with a zero
 * high byte. For ASCII passwords both are the same.
 */
import { md4 as wasmMd4 } from 'hash-wasm';
import type { SchemeHandler } from '../types.ts';
import { constantTimeEqual, decodeDigest } from '../util.ts';

/** MD4 digest of `data`. */
export async function md4(data: Uint8Array): Promise<Buffer> {
  return Buffer.from(await wasmMd4(data), 'hex');
}

/** crypt-nthash's input: every UTF-8 byte of the password followed by a zero byte. */
function widenBytes(password: string): Buffer {
  const bytes = Buffer.from(password, 'utf8');
  const out = Buffer.alloc(bytes.length * 2);
  for (let i = 0; i < bytes.length; i++) out[2 * i] = bytes[i];
  return out;
}

function ntDigest(hash: string): Buffer | undefined {
  const hex = hash.startsWith('$3$$') ? hash.slice(4) : hash;
  return decodeDigest(hex, 'hex', 16);
}

export const ntScheme: SchemeHandler = {
  schemes: ['nt'],
  // Bare NT hashes need the explicit scheme; "$3$$..." is detected.
  selfDescribing: false,
  detect: (hash) => (hash.startsWith('$3$$') ? 'nt' : undefined),
  validate: (cred) => {
    if (!ntDigest(cred.hash)) return 'nt: hash is not 32 hex digits (optionally prefixed by $3$$)';
    if (cred.salt || cred.iterations !== undefined || cred.keyLength !== undefined || cred.key !== undefined) {
      return 'nt: the NT hash takes no salt, iterations, keyLength or key';
    }
    if (cred.encoding !== undefined && cred.encoding !== 'hex') return 'nt: the NT hash is hex';
    return undefined;
  },
  verify: async (cred, _scheme, password) => {
    const expected = ntDigest(cred.hash);
    if (!expected) return false;
    return constantTimeEqual(await md4(cred.hash.startsWith('$3$$') ? widenBytes(password) : Buffer.from(password, 'utf16le')), expected);
  },
};
