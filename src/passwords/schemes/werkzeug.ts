/**
 * Werkzeug's generate_password_hash() PBKDF2 format (Flask apps):
 * "pbkdf2:<digest>:<iterations>$<salt>$<hex hash>", PBKDF2-HMAC over the
 * salt's UTF-8 bytes with a key as long as the digest (werkzeug.security).
 */
import type { SchemeHandler } from '../types.ts';
import { decodeHex, parsePositiveInt } from '../util.ts';
import type { Pbkdf2Digest } from './pbkdf2.ts';
import { iterationsProblem, pbkdf2Compare } from './pbkdf2.ts';

const RE = /^pbkdf2:(sha1|sha256|sha512):(\d+)\$([^$]*)\$([0-9a-fA-F]+)$/;
const DIGEST_LENGTH: Record<Pbkdf2Digest, number> = { sha1: 20, sha256: 32, sha512: 64 };

function parse(hash: string): { digest: Pbkdf2Digest; iterations: number; salt: string; key: Buffer } | string {
  const m = RE.exec(hash);
  if (!m) return 'not a well-formed Werkzeug PBKDF2 hash (pbkdf2:sha256:iterations$salt$hex)';
  const digest = m[1] as Pbkdf2Digest;
  const iterations = parsePositiveInt(m[2]);
  const problem = iterationsProblem(iterations);
  if (problem || iterations === undefined) return `Werkzeug PBKDF2: ${problem}`;
  const key = decodeHex(m[4]);
  if (!key || key.length !== DIGEST_LENGTH[digest]) return `Werkzeug PBKDF2: hash is not ${DIGEST_LENGTH[digest]} bytes of hex`;
  return { digest, iterations, salt: m[3], key };
}

export const werkzeugScheme: SchemeHandler = {
  schemes: ['werkzeug-pbkdf2'],
  selfDescribing: true,
  detect: (hash) => (hash.startsWith('pbkdf2:') ? 'werkzeug-pbkdf2' : undefined),
  validate: (cred) => {
    const parsed = parse(cred.hash);
    return typeof parsed === 'string' ? parsed : undefined;
  },
  verify: async (cred, _scheme, password) => {
    const parsed = parse(cred.hash);
    if (typeof parsed === 'string') return false;
    return pbkdf2Compare(Buffer.from(password, 'utf8'), Buffer.from(parsed.salt, 'utf8'), parsed.iterations, parsed.digest, parsed.key);
  },
};
