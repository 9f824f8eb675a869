/**
 * passlib's PBKDF2 hashes: "$pbkdf2-sha256$<rounds>$<salt ab64>$<checksum ab64>",
 * "$pbkdf2-sha512$..." and "$pbkdf2$..." (SHA-1), where ab64 is passlib's
 * unpadded base64 with '.' for '+'. The salt is the decoded bytes; the key is
 * as long as the digest (passlib.handlers.pbkdf2).
 */
import type { SchemeHandler } from '../types.ts';
import { decodeAb64, parsePositiveInt } from '../util.ts';
import type { Pbkdf2Digest } from './pbkdf2.ts';
import { iterationsProblem, pbkdf2Compare } from './pbkdf2.ts';

const RE = /^\$pbkdf2(?:-(sha256|sha512))?\$(\d+)\$([A-Za-z0-9./+]*)\$([A-Za-z0-9./+]+)$/;
const DIGEST_LENGTH: Record<Pbkdf2Digest, number> = { sha1: 20, sha256: 32, sha512: 64 };

function parse(hash: string): { digest: Pbkdf2Digest; iterations: number; salt: Buffer; key: Buffer } | string {
  const m = RE.exec(hash);
  if (!m) return 'not a well-formed passlib PBKDF2 hash ($pbkdf2-sha256$rounds$salt$checksum)';
  const digest = (m[1] ?? 'sha1') as Pbkdf2Digest;
  const iterations = parsePositiveInt(m[2]);
  const problem = iterationsProblem(iterations);
  if (problem || iterations === undefined) return `passlib PBKDF2: ${problem}`;
  const salt = decodeAb64(m[3]);
  const key = decodeAb64(m[4]);
  if (!salt) return 'passlib PBKDF2: salt is not valid ab64';
  if (!key || key.length !== DIGEST_LENGTH[digest]) return `passlib PBKDF2: checksum is not ${DIGEST_LENGTH[digest]} bytes of ab64`;
  return { digest, iterations, salt, key };
}

export const passlibPbkdf2Scheme: SchemeHandler = {
  schemes: ['passlib-pbkdf2-sha1', 'passlib-pbkdf2-sha256', 'passlib-pbkdf2-sha512'],
  selfDescribing: true,
  detect: (hash) => {
    const m = /^\$pbkdf2(-sha256|-sha512)?\$/.exec(hash);
    return m ? `passlib-pbkdf2-${m[1] ? m[1].slice(1) : 'sha1'}` : undefined;
  },
  validate: (cred, scheme) => {
    if (passlibPbkdf2Scheme.detect?.(cred.hash) !== scheme) return `hash is not a ${scheme} hash`;
    const parsed = parse(cred.hash);
    return typeof parsed === 'string' ? parsed : undefined;
  },
  verify: async (cred, _scheme, password) => {
    const parsed = parse(cred.hash);
    if (typeof parsed === 'string') return false;
    return pbkdf2Compare(Buffer.from(password, 'utf8'), parsed.salt, parsed.iterations, parsed.digest, parsed.key);
  },
};
