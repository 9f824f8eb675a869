// An in-memory AWS KMS look-alike for tests, speaking the real KMS wire
// protocol (AWS JSON 1.1: POST /, `X-Amz-Target: TrentService.<Operation>`,
// JSON bodies with base64 blobs, errors as `{"__type": ..., "message": ...}`)
// so that the unmodified @aws-sdk/client-kms works against it through its
// `endpoint` setting. SigV4 signatures are accepted without being verified.
//
// Programmatic use:
//   const kms = await startKmsServer();
//   const client = new KMSClient({ endpoint: kms.endpoint, region: 'us-east-1',
//     credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
//   const key = await kms.createKey('ECC_NIST_P256');
//   kms.failNext(1, 'KMSInternalException'); kms.setLatency(50); await kms.down();
//
// Standalone: `node test/support/kms-server.ts --port 4599 [--key ECC_NIST_P256=alias/signing]`
// prints the endpoint (first line), then one line per pre-created key, and
// serves until killed.
//
// Everything lives in memory. Symmetric keys are AES-256-GCM; asymmetric keys
// are node:crypto key pairs. Ciphertext blobs are
//   0x01 | key id (16 bytes, the UUID) | IV (12) | GCM tag (16) | ciphertext
// with the version byte, the key id and the canonical encryption context as
// AAD, so any flipped byte makes Decrypt fail with InvalidCiphertextException.
import http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import crypto from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';

// ---------------------------------------------------------------- types

export type KmsKeySpec =
  | 'SYMMETRIC_DEFAULT'
  | 'ECC_NIST_P256'
  | 'ECC_NIST_P384'
  | 'ECC_NIST_P521'
  | 'ECC_SECG_P256K1'
  | 'RSA_2048'
  | 'RSA_3072'
  | 'RSA_4096';
export type KmsKeyUsage = 'ENCRYPT_DECRYPT' | 'SIGN_VERIFY';
export type KmsKeyState = 'Enabled' | 'Disabled' | 'PendingDeletion';

/** KMS error names (the `name` the SDK gives the thrown error); any other string is sent as-is. */
export type KmsErrorName =
  | 'NotFoundException'
  | 'DisabledException'
  | 'KMSInvalidStateException'
  | 'InvalidCiphertextException'
  | 'IncorrectKeyException'
  | 'InvalidKeyUsageException'
  | 'KMSInvalidSignatureException'
  | 'ThrottlingException'
  | 'DependencyTimeoutException'
  | 'KMSInternalException'
  | 'KeyUnavailableException'
  | 'ValidationException'
  | 'LimitExceededException'
  | 'AccessDeniedException'
  | (string & {});

export interface CreateKeyOptions {
  keySpec?: KmsKeySpec;
  /** defaults to ENCRYPT_DECRYPT for SYMMETRIC_DEFAULT, SIGN_VERIFY otherwise */
  keyUsage?: KmsKeyUsage;
  description?: string;
  /** also create this alias (`alias/...`) for the key */
  alias?: string;
  /** a UUID to use as the key id instead of a random one */
  keyId?: string;
  /**
   * asymmetric keys: use this private key (RSA of the spec's size, or EC on
   * the spec's curve) instead of generating one, as KMS ImportKeyMaterial
   * does; tests can then make signatures outside KMS for Verify
   */
  privateKey?: KeyObject;
}

export interface KmsKeyInfo {
  keyId: string;
  arn: string;
  keySpec: KmsKeySpec;
  keyUsage: KmsKeyUsage;
  state: KmsKeyState;
  description: string;
  creationDate: Date;
  aliases: string[];
  signingAlgorithms: string[];
  /** DER SubjectPublicKeyInfo, for asymmetric keys */
  publicKey?: Buffer;
}

export interface FailNextOptions {
  message?: string;
  /** only requests for this operation (e.g. 'Sign') consume the failure */
  operation?: string;
  /** HTTP status; by default 500 for KMSInternalException/KeyUnavailableException, 503 for DependencyTimeoutException, else 400 */
  statusCode?: number;
}

export interface KmsTestServer {
  /** http://127.0.0.1:PORT */
  readonly endpoint: string;
  readonly port: number;
  readonly region: string;
  readonly accountId: string;
  /** live request counters per operation (every request that reached the server, including failed ones); known operations start at 0 */
  readonly calls: Readonly<Record<string, number>>;
  /** sum of `calls` */
  readonly totalCalls: number;
  readonly isDown: boolean;
  /** create a key directly (no HTTP, not counted in `calls`) */
  createKey(spec?: KmsKeySpec | CreateKeyOptions): Promise<KmsKeyInfo>;
  /** create an alias directly (no HTTP) */
  createAlias(aliasName: string, keyId: string): void;
  /** look a key up by id, ARN, alias or alias ARN */
  getKey(keyId: string): KmsKeyInfo | undefined;
  /** the next `n` requests (optionally: for one operation) fail with this KMS error; calls queue up */
  failNext(n: number, errorName: KmsErrorName, opts?: FailNextOptions): void;
  /** delay every response (errors included) by `ms` */
  setLatency(ms: number): void;
  /** at most `maxPerSecond` requests per sliding second succeed, the rest get ThrottlingException; 0/null/Infinity turn it off */
  setThrottle(maxPerSecond: number | null): void;
  /** stop listening and drop every open connection: clients see ECONNREFUSED / ECONNRESET */
  down(): Promise<void>;
  /** listen again on the same port */
  up(): Promise<void>;
  /** clear faults, latency, throttle and counters and bring the server up; with `{ keys: true }` also forget every key and alias */
  reset(opts?: { keys?: boolean }): Promise<void>;
  close(): Promise<void>;
}

export interface StartKmsServerOptions {
  /** 0 (the default) picks a free port */
  port?: number;
  host?: string;
  /** region used in ARNs; default us-east-1 */
  region?: string;
  /** account used in ARNs; default 111122223333 */
  accountId?: string;
}

// ---------------------------------------------------------------- errors

class KmsError extends Error {
  code: string;
  status: number;
  constructor(code: string, message: string, status?: number) {
    super(message);
    this.code = code;
    this.status = status ?? defaultStatus(code);
  }
}

function defaultStatus(code: string): number {
  switch (code) {
    case 'KMSInternalException':
    case 'KeyUnavailableException':
    case 'InternalFailure':
      return 500;
    case 'DependencyTimeoutException':
    case 'ServiceUnavailableException':
      return 503;
    default:
      return 400;
  }
}

const validation = (message: string) => new KmsError('ValidationException', message);

// ---------------------------------------------------------------- algorithms

interface CurveParams {
  /** OpenSSL name, for createECDH */
  ossl: string;
  /** name for generateKeyPair */
  named: string;
  p: bigint;
  a: bigint;
  n: bigint;
  nBits: number;
  nBytes: number;
  G?: Point;
}

const P256 = 2n ** 256n - 2n ** 224n + 2n ** 192n + 2n ** 96n - 1n;
const P384 = 2n ** 384n - 2n ** 128n - 2n ** 96n + 2n ** 32n - 1n;
const P521 = 2n ** 521n - 1n;
const PK1 = 2n ** 256n - 2n ** 32n - 977n;

function curve(ossl: string, named: string, p: bigint, a: bigint, n: bigint): CurveParams {
  const nBits = n.toString(2).length;
  return { ossl, named, p, a, n, nBits, nBytes: Math.ceil(nBits / 8) };
}

const CURVES: Record<string, CurveParams> = {
  ECC_NIST_P256: curve('prime256v1', 'P-256', P256, P256 - 3n,
    0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n),
  ECC_NIST_P384: curve('secp384r1', 'P-384', P384, P384 - 3n,
    0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n),
  ECC_NIST_P521: curve('secp521r1', 'P-521', P521, P521 - 3n,
    0x1fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n),
  ECC_SECG_P256K1: curve('secp256k1', 'secp256k1', PK1, 0n,
    0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n),
};

type SigKind = 'ecdsa' | 'pkcs1' | 'pss';
interface SigningAlg {
  kind: SigKind;
  hash: 'sha256' | 'sha384' | 'sha512';
  hashLen: number;
}

const SIGNING_ALGS: Record<string, SigningAlg> = {
  ECDSA_SHA_256: { kind: 'ecdsa', hash: 'sha256', hashLen: 32 },
  ECDSA_SHA_384: { kind: 'ecdsa', hash: 'sha384', hashLen: 48 },
  ECDSA_SHA_512: { kind: 'ecdsa', hash: 'sha512', hashLen: 64 },
  RSASSA_PKCS1_V1_5_SHA_256: { kind: 'pkcs1', hash: 'sha256', hashLen: 32 },
  RSASSA_PKCS1_V1_5_SHA_384: { kind: 'pkcs1', hash: 'sha384', hashLen: 48 },
  RSASSA_PKCS1_V1_5_SHA_512: { kind: 'pkcs1', hash: 'sha512', hashLen: 64 },
  RSASSA_PSS_SHA_256: { kind: 'pss', hash: 'sha256', hashLen: 32 },
  RSASSA_PSS_SHA_384: { kind: 'pss', hash: 'sha384', hashLen: 48 },
  RSASSA_PSS_SHA_512: { kind: 'pss', hash: 'sha512', hashLen: 64 },
};

const RSA_ALGS = [
  'RSASSA_PSS_SHA_256', 'RSASSA_PSS_SHA_384', 'RSASSA_PSS_SHA_512',
  'RSASSA_PKCS1_V1_5_SHA_256', 'RSASSA_PKCS1_V1_5_SHA_384', 'RSASSA_PKCS1_V1_5_SHA_512',
];

const KEY_SPECS: Record<KmsKeySpec, { usage: KmsKeyUsage; signing: string[]; rsaBits?: number }> = {
  SYMMETRIC_DEFAULT: { usage: 'ENCRYPT_DECRYPT', signing: [] },
  ECC_NIST_P256: { usage: 'SIGN_VERIFY', signing: ['ECDSA_SHA_256'] },
  ECC_NIST_P384: { usage: 'SIGN_VERIFY', signing: ['ECDSA_SHA_384'] },
  ECC_NIST_P521: { usage: 'SIGN_VERIFY', signing: ['ECDSA_SHA_512'] },
  ECC_SECG_P256K1: { usage: 'SIGN_VERIFY', signing: ['ECDSA_SHA_256'] },
  RSA_2048: { usage: 'SIGN_VERIFY', signing: RSA_ALGS, rsaBits: 2048 },
  RSA_3072: { usage: 'SIGN_VERIFY', signing: RSA_ALGS, rsaBits: 3072 },
  RSA_4096: { usage: 'SIGN_VERIFY', signing: RSA_ALGS, rsaBits: 4096 },
};

const DIGEST_INFO_PREFIX: Record<string, Buffer> = {
  sha256: Buffer.from('3031300d060960864801650304020105000420', 'hex'),
  sha384: Buffer.from('3041300d060960864801650304020205000430', 'hex'),
  sha512: Buffer.from('3051300d060960864801650304020305000440', 'hex'),
};

const SUPPORTED_OPERATIONS = [
  'CreateKey', 'DescribeKey', 'ListKeys', 'EnableKey', 'DisableKey', 'ScheduleKeyDeletion',
  'CancelKeyDeletion', 'CreateAlias', 'UpdateAlias', 'DeleteAlias', 'ListAliases', 'Encrypt',
  'Decrypt', 'ReEncrypt', 'GenerateDataKey', 'GenerateDataKeyWithoutPlaintext', 'GenerateRandom',
  'Sign', 'Verify', 'GetPublicKey',
] as const;

// ---------------------------------------------------------------- bigint / EC helpers

type Point = { x: bigint; y: bigint };
type Jacobian = { x: bigint; y: bigint; z: bigint } | null;

function mod(v: bigint, m: bigint): bigint {
  const r = v % m;
  return r < 0n ? r + m : r;
}

function modPow(base: bigint, exp: bigint, m: bigint): bigint {
  let result = 1n;
  let b = mod(base, m);
  let e = exp;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return result;
}

/** inverse modulo a prime */
const modInv = (a: bigint, p: bigint): bigint => modPow(a, p - 2n, p);

const toBig = (buf: Buffer): bigint => (buf.length === 0 ? 0n : BigInt('0x' + buf.toString('hex')));

function toBuf(v: bigint, len: number): Buffer {
  return Buffer.from(v.toString(16).padStart(len * 2, '0'), 'hex');
}

function jDouble(P: Jacobian, c: CurveParams): Jacobian {
  if (!P || P.y === 0n) return null;
  const { p, a } = c;
  const y2 = mod(P.y * P.y, p);
  const S = mod(4n * P.x * y2, p);
  const z2 = mod(P.z * P.z, p);
  const M = mod(3n * P.x * P.x + a * z2 * z2, p);
  const x3 = mod(M * M - 2n * S, p);
  const y3 = mod(M * (S - x3) - 8n * y2 * y2, p);
  return { x: x3, y: y3, z: mod(2n * P.y * P.z, p) };
}

function jAdd(P: Jacobian, Q: Jacobian, c: CurveParams): Jacobian {
  if (!P) return Q;
  if (!Q) return P;
  const { p } = c;
  const z1z1 = mod(P.z * P.z, p);
  const z2z2 = mod(Q.z * Q.z, p);
  const u1 = mod(P.x * z2z2, p);
  const u2 = mod(Q.x * z1z1, p);
  const s1 = mod(P.y * Q.z * z2z2, p);
  const s2 = mod(Q.y * P.z * z1z1, p);
  if (u1 === u2) return s1 === s2 ? jDouble(P, c) : null;
  const h = mod(u2 - u1, p);
  const r = mod(s2 - s1, p);
  const h2 = mod(h * h, p);
  const h3 = mod(h2 * h, p);
  const u1h2 = mod(u1 * h2, p);
  const x3 = mod(r * r - h3 - 2n * u1h2, p);
  const y3 = mod(r * (u1h2 - x3) - s1 * h3, p);
  return { x: x3, y: y3, z: mod(h * P.z * Q.z, p) };
}

function jMul(k: bigint, P: Point, c: CurveParams): Jacobian {
  const base: Jacobian = { x: P.x, y: P.y, z: 1n };
  let R: Jacobian = null;
  for (const bit of k.toString(2)) {
    R = jDouble(R, c);
    if (bit === '1') R = jAdd(R, base, c);
  }
  return R;
}

function affineX(P: NonNullable<Jacobian>, c: CurveParams): bigint {
  const zi = modInv(P.z, c.p);
  return mod(P.x * zi * zi, c.p);
}

/** k·G through OpenSSL's ECDH (fast), as the uncompressed point */
function baseMul(c: CurveParams, k: bigint): Point {
  const ecdh = crypto.createECDH(c.ossl);
  ecdh.setPrivateKey(toBuf(k, c.nBytes));
  const pub = ecdh.getPublicKey();
  const len = (pub.length - 1) / 2;
  return { x: toBig(pub.subarray(1, 1 + len)), y: toBig(pub.subarray(1 + len)) };
}

function generator(c: CurveParams): Point {
  c.G ??= baseMul(c, 1n);
  return c.G;
}

/** leftmost nBits of the digest as an integer (SEC 1, 4.1.3 step 5) */
function bits2int(digest: Buffer, nBits: number): bigint {
  const z = toBig(digest);
  const excess = digest.length * 8 - nBits;
  return excess > 0 ? z >> BigInt(excess) : z;
}

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  if (n < 0x100) return Buffer.from([0x81, n]);
  return Buffer.from([0x82, n >> 8, n & 0xff]);
}

function derInteger(v: bigint): Buffer {
  let hex = v.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  let bytes = Buffer.from(hex, 'hex');
  if (bytes[0] & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return Buffer.concat([Buffer.from([0x02]), derLength(bytes.length), bytes]);
}

/** ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }, DER (what KMS returns) */
function derSignature(r: bigint, s: bigint): Buffer {
  const body = Buffer.concat([derInteger(r), derInteger(s)]);
  return Buffer.concat([Buffer.from([0x30]), derLength(body.length), body]);
}

function readDerLength(buf: Buffer, off: number): [number, number] | null {
  if (off >= buf.length) return null;
  const first = buf[off];
  if (first < 0x80) return [first, off + 1];
  if (first === 0x81 && off + 1 < buf.length && buf[off + 1] >= 0x80) return [buf[off + 1], off + 2];
  if (first === 0x82 && off + 2 < buf.length) {
    const len = (buf[off + 1] << 8) | buf[off + 2];
    return len >= 0x100 ? [len, off + 3] : null;
  }
  return null;
}

function parseDerSignature(sig: Buffer): { r: bigint; s: bigint } | null {
  if (sig[0] !== 0x30) return null;
  const seq = readDerLength(sig, 1);
  if (!seq || seq[1] + seq[0] !== sig.length) return null;
  let off = seq[1];
  const ints: bigint[] = [];
  for (let i = 0; i < 2; i++) {
    if (sig[off] !== 0x02) return null;
    const l = readDerLength(sig, off + 1);
    if (!l || l[0] === 0 || l[1] + l[0] > sig.length) return null;
    const bytes = sig.subarray(l[1], l[1] + l[0]);
    if (bytes[0] & 0x80) return null; // negative
    if (bytes.length > 1 && bytes[0] === 0 && !(bytes[1] & 0x80)) return null; // not minimal
    ints.push(toBig(bytes));
    off = l[1] + l[0];
  }
  if (off !== sig.length) return null;
  return { r: ints[0], s: ints[1] };
}

function ecdsaSignDigest(c: CurveParams, d: bigint, digest: Buffer): Buffer {
  const z = bits2int(digest, c.nBits);
  for (;;) {
    const k = mod(toBig(crypto.randomBytes(c.nBytes + 8)), c.n - 1n) + 1n;
    const r = mod(baseMul(c, k).x, c.n);
    if (r === 0n) continue;
    const s = mod(modInv(k, c.n) * (z + r * d), c.n);
    if (s === 0n) continue;
    return derSignature(r, s);
  }
}

function ecdsaVerifyDigest(c: CurveParams, Q: Point, digest: Buffer, sig: Buffer): boolean {
  const parsed = parseDerSignature(sig);
  if (!parsed) return false;
  const { r, s } = parsed;
  if (r < 1n || r >= c.n || s < 1n || s >= c.n) return false;
  const z = bits2int(digest, c.nBits);
  const w = modInv(s, c.n);
  const R = jAdd(jMul(mod(z * w, c.n), generator(c), c), jMul(mod(r * w, c.n), Q, c), c);
  if (!R) return false;
  return mod(affineX(R, c), c.n) === r;
}

// ---------------------------------------------------------------- RSA-PSS on a digest (RFC 8017 9.1)

function mgf1(seed: Buffer, len: number, hash: string): Buffer {
  const parts: Buffer[] = [];
  let total = 0;
  for (let counter = 0; total < len; counter++) {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(counter);
    const block = crypto.createHash(hash).update(seed).update(c).digest();
    parts.push(block);
    total += block.length;
  }
  return Buffer.concat(parts).subarray(0, len);
}

function pssEncode(mHash: Buffer, alg: SigningAlg, modBits: number): Buffer {
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  const hLen = alg.hashLen;
  const sLen = hLen;
  const salt = crypto.randomBytes(sLen);
  const H = crypto.createHash(alg.hash).update(Buffer.alloc(8)).update(mHash).update(salt).digest();
  const db = Buffer.alloc(emLen - hLen - 1);
  db[emLen - sLen - hLen - 2] = 0x01;
  salt.copy(db, emLen - sLen - hLen - 1);
  const mask = mgf1(H, db.length, alg.hash);
  for (let i = 0; i < db.length; i++) db[i] ^= mask[i];
  db[0] &= 0xff >> (8 * emLen - emBits);
  const em = Buffer.concat([db, H, Buffer.from([0xbc])]);
  const k = Math.ceil(modBits / 8);
  return em.length < k ? Buffer.concat([Buffer.alloc(k - em.length), em]) : em;
}

function pssVerify(mHash: Buffer, decoded: Buffer, alg: SigningAlg, modBits: number): boolean {
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  const hLen = alg.hashLen;
  const sLen = hLen;
  if (decoded.length < emLen) return false;
  if (decoded.subarray(0, decoded.length - emLen).some((b) => b !== 0)) return false;
  const em = decoded.subarray(decoded.length - emLen);
  if (emLen < hLen + sLen + 2 || em[emLen - 1] !== 0xbc) return false;
  const topMask = 0xff >> (8 * emLen - emBits);
  const maskedDb = em.subarray(0, emLen - hLen - 1);
  const H = em.subarray(emLen - hLen - 1, emLen - 1);
  if (maskedDb[0] & ~topMask & 0xff) return false;
  const mask = mgf1(H, maskedDb.length, alg.hash);
  const db = Buffer.alloc(maskedDb.length);
  for (let i = 0; i < db.length; i++) db[i] = maskedDb[i] ^ mask[i];
  db[0] &= topMask;
  const sep = emLen - hLen - sLen - 2;
  if (db.subarray(0, sep).some((b) => b !== 0) || db[sep] !== 0x01) return false;
  const salt = db.subarray(db.length - sLen);
  const H2 = crypto.createHash(alg.hash).update(Buffer.alloc(8)).update(mHash).update(salt).digest();
  return crypto.timingSafeEqual(H, H2);
}

// ---------------------------------------------------------------- keys

interface KeyRecord {
  id: string;
  arn: string;
  spec: KmsKeySpec;
  usage: KmsKeyUsage;
  state: KmsKeyState;
  description: string;
  created: Date;
  deletionDate?: Date;
  pendingWindowInDays?: number;
  signingAlgorithms: string[];
  /** AES-256 key, symmetric keys */
  material?: Buffer;
  privateKey?: KeyObject;
  publicKey?: KeyObject;
  spki?: Buffer;
  /** ECC keys */
  curve?: CurveParams;
  ecD?: bigint;
  ecQ?: Point;
  /** RSA keys */
  modBits?: number;
}

interface AliasRecord {
  name: string;
  keyId: string;
  created: Date;
  updated: Date;
}

const generateKeyPair = promisify(crypto.generateKeyPair);

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ALIAS_RE = /^alias\/[a-zA-Z0-9:/_-]{1,250}$/;

const uuidToBytes = (id: string): Buffer => Buffer.from(id.replace(/-/g, ''), 'hex');
function bytesToUuid(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const CIPHERTEXT_VERSION = 0x01;
const HEADER_LEN = 1 + 16;
const IV_LEN = 12;
const TAG_LEN = 16;

/** Order-insensitive, unambiguous encoding of an encryption context, used as AAD. */
function canonicalContext(ctx: Record<string, string>): Buffer {
  const entries = Object.entries(ctx).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Buffer.from(JSON.stringify(entries), 'utf8');
}

// ---------------------------------------------------------------- input helpers

type Input = Record<string, unknown>;

function optString(input: Input, name: string): string | undefined {
  const v = input[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw validation(`Value at '${lcFirst(name)}' must be a string`);
  return v;
}

function reqString(input: Input, name: string): string {
  const v = optString(input, name);
  if (v === undefined || v === '') {
    throw validation(`1 validation error detected: Value null at '${lcFirst(name)}' failed to satisfy constraint: Member must not be null`);
  }
  return v;
}

function optInt(input: Input, name: string, min: number, max: number): number | undefined {
  const v = input[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw validation(`1 validation error detected: Value '${String(v)}' at '${lcFirst(name)}' failed to satisfy constraint: Member must have value between ${min} and ${max}`);
  }
  return v;
}

function optBlob(input: Input, name: string): Buffer | undefined {
  const v = input[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0) {
    throw new KmsError('SerializationException', `Value at '${lcFirst(name)}' is not valid base64`);
  }
  return Buffer.from(v, 'base64');
}

function reqBlob(input: Input, name: string, maxLen: number): Buffer {
  const b = optBlob(input, name);
  if (!b || b.length === 0) {
    throw validation(`1 validation error detected: Value at '${lcFirst(name)}' failed to satisfy constraint: Member must have length greater than or equal to 1`);
  }
  if (b.length > maxLen) {
    throw validation(`1 validation error detected: Value at '${lcFirst(name)}' failed to satisfy constraint: Member must have length less than or equal to ${maxLen}`);
  }
  return b;
}

function optContext(input: Input, name: string): Record<string, string> {
  const v = input[name];
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw validation(`Value at '${lcFirst(name)}' must be a map`);
  for (const val of Object.values(v)) {
    if (typeof val !== 'string') throw validation(`Values of '${lcFirst(name)}' must be strings`);
  }
  return v as Record<string, string>;
}

const lcFirst = (s: string) => s.charAt(0).toLowerCase() + s.slice(1);
const epoch = (d: Date) => d.getTime() / 1000;
const b64 = (b: Buffer) => b.toString('base64');

// ---------------------------------------------------------------- the server

export async function startKmsServer(opts: StartKmsServerOptions = {}): Promise<KmsTestServer> {
  const host = opts.host ?? '127.0.0.1';
  const region = opts.region ?? 'us-east-1';
  const accountId = opts.accountId ?? '111122223333';
  const arnPrefix = `arn:aws:kms:${region}:${accountId}:`;

  const keys = new Map<string, KeyRecord>();
  const aliases = new Map<string, AliasRecord>();

  const calls: Record<string, number> = {};
  const zeroCalls = () => {
    for (const k of Object.keys(calls)) delete calls[k];
    for (const op of SUPPORTED_OPERATIONS) calls[op] = 0;
  };
  zeroCalls();

  let faults: { remaining: number; name: string; message: string; operation?: string; status: number }[] = [];
  let latencyMs = 0;
  let throttle: number | null = null;
  let accepted: number[] = [];
  let isDown = false;
  let closed = false;
  const sockets = new Set<Socket>();
  const sleepers = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();

  // ------------------------------------------------ key management

  /** imported key material: a private key that fits the key spec */
  function importedPair(spec: KmsKeySpec, privateKey: KeyObject): { privateKey: KeyObject; publicKey: KeyObject } {
    const c = CURVES[spec];
    const d = privateKey.asymmetricKeyDetails;
    const fits = privateKey.type === 'private' && (c
      ? privateKey.asymmetricKeyType === 'ec' && d?.namedCurve === c.named
      : privateKey.asymmetricKeyType === 'rsa' && d?.modulusLength === KEY_SPECS[spec].rsaBits);
    if (!fits) throw validation(`the imported key material does not fit KeySpec ${spec}`);
    return { privateKey, publicKey: crypto.createPublicKey(privateKey) };
  }

  async function createKeyRecord(spec: KmsKeySpec, usage: KmsKeyUsage, description: string, id?: string, material?: KeyObject): Promise<KeyRecord> {
    const specInfo = KEY_SPECS[spec];
    if (!specInfo) throw new KmsError('UnsupportedOperationException', `KeySpec ${spec} is not supported by this test server`);
    if (usage !== specInfo.usage) {
      if (spec.startsWith('RSA_') && usage === 'ENCRYPT_DECRYPT') {
        throw new KmsError('UnsupportedOperationException', 'RSA encryption keys are not supported by this test server');
      }
      throw validation(`KeyUsage ${usage} is not compatible with KeySpec ${spec}`);
    }
    const keyId = id ?? crypto.randomUUID();
    if (!UUID_RE.test(keyId)) throw validation(`Key id ${keyId} is not a lowercase UUID`);
    if (keys.has(keyId)) throw new KmsError('AlreadyExistsException', `Key ${keyId} already exists`);
    const record: KeyRecord = {
      id: keyId,
      arn: `${arnPrefix}key/${keyId}`,
      spec,
      usage,
      state: 'Enabled',
      description,
      created: new Date(),
      signingAlgorithms: specInfo.signing,
    };
    if (spec === 'SYMMETRIC_DEFAULT') {
      if (material) throw validation('key material can be imported for asymmetric keys only');
      record.material = crypto.randomBytes(32);
    } else {
      const c = CURVES[spec];
      const pair = material
        ? importedPair(spec, material)
        : c
          ? await generateKeyPair('ec', { namedCurve: c.named })
          : await generateKeyPair('rsa', { modulusLength: specInfo.rsaBits ?? 2048 });
      record.privateKey = pair.privateKey;
      record.publicKey = pair.publicKey;
      record.spki = pair.publicKey.export({ type: 'spki', format: 'der' });
      if (c) {
        const jwk = pair.privateKey.export({ format: 'jwk' });
        record.curve = c;
        record.ecD = toBig(Buffer.from(jwk.d ?? '', 'base64url'));
        record.ecQ = { x: toBig(Buffer.from(jwk.x ?? '', 'base64url')), y: toBig(Buffer.from(jwk.y ?? '', 'base64url')) };
      } else {
        record.modBits = pair.publicKey.asymmetricKeyDetails?.modulusLength ?? specInfo.rsaBits;
      }
    }
    keys.set(keyId, record);
    return record;
  }

  function aliasArn(name: string) {
    return `${arnPrefix}${name}`;
  }

  /** Resolve a KeyId parameter: key id, key ARN, alias name or alias ARN. */
  function resolveKey(keyId: string, allowAlias = true): KeyRecord {
    let ref = keyId;
    if (ref.startsWith('arn:')) {
      const m = /^arn:aws:kms:([^:]*):([^:]*):((?:key|alias)\/.+)$/.exec(ref);
      if (!m) throw new KmsError('NotFoundException', `Invalid arn ${keyId}`);
      if (m[1] !== region || m[2] !== accountId) {
        throw new KmsError('NotFoundException', `Key '${keyId}' does not exist`);
      }
      ref = m[3];
      if (ref.startsWith('key/')) ref = ref.slice(4);
    }
    if (ref.startsWith('alias/')) {
      if (!allowAlias) throw validation(`An alias is not allowed here: ${keyId}`);
      const alias = aliases.get(ref);
      const key = alias && keys.get(alias.keyId);
      if (!key) throw new KmsError('NotFoundException', `Alias ${aliasArn(ref)} is not found.`);
      return key;
    }
    const key = keys.get(ref);
    if (!key) throw new KmsError('NotFoundException', `Key '${ref.includes(':') ? keyId : `${arnPrefix}key/${ref}`}' does not exist`);
    return key;
  }

  function assertUsable(key: KeyRecord) {
    if (key.state === 'Disabled') throw new KmsError('DisabledException', `${key.arn} is disabled.`);
    if (key.state === 'PendingDeletion') throw new KmsError('KMSInvalidStateException', `${key.arn} is pending deletion.`);
  }

  function symmetricKey(keyIdParam: string): KeyRecord {
    const key = resolveKey(keyIdParam);
    if (key.spec !== 'SYMMETRIC_DEFAULT' || key.usage !== 'ENCRYPT_DECRYPT') {
      throw new KmsError('InvalidKeyUsageException', `${key.arn} key usage is ${key.usage} which is not valid for this operation.`);
    }
    return key;
  }

  function signingKey(keyIdParam: string, algName: string): { key: KeyRecord; alg: SigningAlg } {
    const key = resolveKey(keyIdParam);
    if (key.usage !== 'SIGN_VERIFY') {
      throw new KmsError('InvalidKeyUsageException', `${key.arn} key usage is ${key.usage} which is not valid for this operation.`);
    }
    const alg = SIGNING_ALGS[algName];
    if (!alg || !key.signingAlgorithms.includes(algName)) {
      if (!alg) throw validation(`1 validation error detected: Value '${algName}' at 'signingAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [${Object.keys(SIGNING_ALGS).join(', ')}]`);
      throw new KmsError('InvalidKeyUsageException', `Algorithm ${algName} is incompatible with key spec ${key.spec}.`);
    }
    return { key, alg };
  }

  function checkEncryptionAlgorithm(input: Input, name: string) {
    const alg = optString(input, name);
    if (alg !== undefined && alg !== 'SYMMETRIC_DEFAULT') {
      throw new KmsError('InvalidKeyUsageException', `Encryption algorithm ${alg} is not supported for a symmetric key`);
    }
  }

  function encryptWith(key: KeyRecord, plaintext: Buffer, ctx: Record<string, string>): Buffer {
    const header = Buffer.concat([Buffer.from([CIPHERTEXT_VERSION]), uuidToBytes(key.id)]);
    const iv = crypto.randomBytes(IV_LEN);
    const cipher = crypto.createCipheriv('aes-256-gcm', key.material as Buffer, iv);
    cipher.setAAD(Buffer.concat([header, canonicalContext(ctx)]));
    const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([header, iv, cipher.getAuthTag(), ct]);
  }

  /** Decrypt a ciphertext blob; `keyIdParam` (optional) must name the key it was made with. */
  function decryptBlob(blob: Buffer, ctx: Record<string, string>, keyIdParam: string | undefined): { key: KeyRecord; plaintext: Buffer } {
    const invalid = () =>
      new KmsError('InvalidCiphertextException', 'The ciphertext is invalid, was tampered with, or does not match the key or encryption context.');
    if (blob.length < HEADER_LEN + IV_LEN + TAG_LEN + 1 || blob[0] !== CIPHERTEXT_VERSION) throw invalid();
    const blobKeyId = bytesToUuid(blob.subarray(1, HEADER_LEN));
    const blobKey = keys.get(blobKeyId);
    let key: KeyRecord;
    if (keyIdParam !== undefined) {
      key = symmetricKey(keyIdParam);
      if (key.id !== blobKeyId) {
        if (blobKey) throw new KmsError('IncorrectKeyException', 'The key ID in the request does not identify a KMS key that can perform this operation.');
        throw invalid();
      }
    } else {
      if (!blobKey || !blobKey.material) throw invalid();
      key = blobKey;
    }
    assertUsable(key);
    try {
      const decipher = crypto.createDecipheriv('aes-256-gcm', key.material as Buffer, blob.subarray(HEADER_LEN, HEADER_LEN + IV_LEN));
      decipher.setAAD(Buffer.concat([blob.subarray(0, HEADER_LEN), canonicalContext(ctx)]));
      decipher.setAuthTag(blob.subarray(HEADER_LEN + IV_LEN, HEADER_LEN + IV_LEN + TAG_LEN));
      const plaintext = Buffer.concat([decipher.update(blob.subarray(HEADER_LEN + IV_LEN + TAG_LEN)), decipher.final()]);
      return { key, plaintext };
    } catch {
      throw invalid();
    }
  }

  function metadata(k: KeyRecord) {
    return {
      AWSAccountId: accountId,
      KeyId: k.id,
      Arn: k.arn,
      CreationDate: epoch(k.created),
      Enabled: k.state === 'Enabled',
      Description: k.description,
      KeyUsage: k.usage,
      KeyState: k.state,
      Origin: 'AWS_KMS',
      KeyManager: 'CUSTOMER',
      CustomerMasterKeySpec: k.spec,
      KeySpec: k.spec,
      ...(k.usage === 'ENCRYPT_DECRYPT' ? { EncryptionAlgorithms: ['SYMMETRIC_DEFAULT'] } : {}),
      ...(k.usage === 'SIGN_VERIFY' ? { SigningAlgorithms: k.signingAlgorithms } : {}),
      MultiRegion: false,
      ...(k.deletionDate ? { DeletionDate: epoch(k.deletionDate), PendingDeletionWindowInDays: k.pendingWindowInDays } : {}),
    };
  }

  function keyInfo(k: KeyRecord): KmsKeyInfo {
    return {
      keyId: k.id,
      arn: k.arn,
      keySpec: k.spec,
      keyUsage: k.usage,
      state: k.state,
      description: k.description,
      creationDate: k.created,
      aliases: [...aliases.values()].filter((a) => a.keyId === k.id).map((a) => a.name),
      signingAlgorithms: [...k.signingAlgorithms],
      ...(k.spki ? { publicKey: Buffer.from(k.spki) } : {}),
    };
  }

  function addAlias(name: string, targetKeyId: string) {
    if (!ALIAS_RE.test(name) || name.startsWith('alias/aws/')) {
      throw new KmsError('InvalidAliasNameException', `Alias must start with the prefix "alias/" and may not use the reserved "alias/aws/" prefix: ${name}`);
    }
    if (aliases.has(name)) throw new KmsError('AlreadyExistsException', `An alias with the name ${aliasArn(name)} already exists`);
    const key = resolveKey(targetKeyId, false);
    if (key.state === 'PendingDeletion') throw new KmsError('KMSInvalidStateException', `${key.arn} is pending deletion.`);
    const now = new Date();
    aliases.set(name, { name, keyId: key.id, created: now, updated: now });
  }

  function page<T>(items: T[], input: Input): { items: T[]; next?: string } {
    const limit = optInt(input, 'Limit', 1, 1000) ?? 100;
    const marker = optString(input, 'Marker');
    const start = marker === undefined ? 0 : Number.parseInt(marker, 10);
    if (!Number.isInteger(start) || start < 0 || start > items.length) {
      throw new KmsError('InvalidMarkerException', 'The marker is not valid');
    }
    const slice = items.slice(start, start + limit);
    return { items: slice, ...(start + limit < items.length ? { next: String(start + limit) } : {}) };
  }

  // ------------------------------------------------ operations

  const operations: Record<string, (input: Input) => Promise<object> | object> = {
    async CreateKey(input) {
      const spec = (optString(input, 'KeySpec') ?? optString(input, 'CustomerMasterKeySpec') ?? 'SYMMETRIC_DEFAULT') as KmsKeySpec;
      const usage = (optString(input, 'KeyUsage') ?? 'ENCRYPT_DECRYPT') as KmsKeyUsage;
      const origin = optString(input, 'Origin') ?? 'AWS_KMS';
      if (origin !== 'AWS_KMS') throw new KmsError('UnsupportedOperationException', `Origin ${origin} is not supported by this test server`);
      if (usage !== 'ENCRYPT_DECRYPT' && usage !== 'SIGN_VERIFY') {
        throw new KmsError('UnsupportedOperationException', `KeyUsage ${usage} is not supported by this test server`);
      }
      const key = await createKeyRecord(spec, usage, optString(input, 'Description') ?? '');
      return { KeyMetadata: metadata(key) };
    },

    DescribeKey(input) {
      return { KeyMetadata: metadata(resolveKey(reqString(input, 'KeyId'))) };
    },

    ListKeys(input) {
      const { items, next } = page([...keys.values()], input);
      return {
        Keys: items.map((k) => ({ KeyId: k.id, KeyArn: k.arn })),
        Truncated: next !== undefined,
        ...(next !== undefined ? { NextMarker: next } : {}),
      };
    },

    EnableKey(input) {
      const key = resolveKey(reqString(input, 'KeyId'), false);
      if (key.state === 'PendingDeletion') throw new KmsError('KMSInvalidStateException', `${key.arn} is pending deletion.`);
      key.state = 'Enabled';
      return {};
    },

    DisableKey(input) {
      const key = resolveKey(reqString(input, 'KeyId'), false);
      if (key.state === 'PendingDeletion') throw new KmsError('KMSInvalidStateException', `${key.arn} is pending deletion.`);
      key.state = 'Disabled';
      return {};
    },

    ScheduleKeyDeletion(input) {
      const key = resolveKey(reqString(input, 'KeyId'), false);
      const days = optInt(input, 'PendingWindowInDays', 7, 30) ?? 30;
      if (key.state === 'PendingDeletion') throw new KmsError('KMSInvalidStateException', `${key.arn} is pending deletion.`);
      key.state = 'PendingDeletion';
      key.pendingWindowInDays = days;
      key.deletionDate = new Date(Date.now() + days * 86_400_000);
      return { KeyId: key.arn, DeletionDate: epoch(key.deletionDate), KeyState: key.state, PendingWindowInDays: days };
    },

    CancelKeyDeletion(input) {
      const key = resolveKey(reqString(input, 'KeyId'), false);
      if (key.state !== 'PendingDeletion') throw new KmsError('KMSInvalidStateException', `${key.arn} is not pending deletion.`);
      key.state = 'Disabled';
      delete key.deletionDate;
      delete key.pendingWindowInDays;
      return { KeyId: key.arn };
    },

    CreateAlias(input) {
      addAlias(reqString(input, 'AliasName'), reqString(input, 'TargetKeyId'));
      return {};
    },

    UpdateAlias(input) {
      const name = reqString(input, 'AliasName');
      const alias = aliases.get(name);
      if (!alias) throw new KmsError('NotFoundException', `Alias ${aliasArn(name)} is not found.`);
      const key = resolveKey(reqString(input, 'TargetKeyId'), false);
      if (key.state === 'PendingDeletion') throw new KmsError('KMSInvalidStateException', `${key.arn} is pending deletion.`);
      alias.keyId = key.id;
      alias.updated = new Date();
      return {};
    },

    DeleteAlias(input) {
      const name = reqString(input, 'AliasName');
      if (!aliases.delete(name)) throw new KmsError('NotFoundException', `Alias ${aliasArn(name)} is not found.`);
      return {};
    },

    ListAliases(input) {
      const keyIdParam = optString(input, 'KeyId');
      const filterId = keyIdParam === undefined ? undefined : resolveKey(keyIdParam, false).id;
      const all = [...aliases.values()]
        .filter((a) => filterId === undefined || a.keyId === filterId)
        .sort((a, b) => (a.name < b.name ? -1 : 1));
      const { items, next } = page(all, input);
      return {
        Aliases: items.map((a) => ({
          AliasName: a.name,
          AliasArn: aliasArn(a.name),
          TargetKeyId: a.keyId,
          CreationDate: epoch(a.created),
          LastUpdatedDate: epoch(a.updated),
        })),
        Truncated: next !== undefined,
        ...(next !== undefined ? { NextMarker: next } : {}),
      };
    },

    Encrypt(input) {
      const key = symmetricKey(reqString(input, 'KeyId'));
      const plaintext = reqBlob(input, 'Plaintext', 4096);
      const ctx = optContext(input, 'EncryptionContext');
      checkEncryptionAlgorithm(input, 'EncryptionAlgorithm');
      assertUsable(key);
      return { CiphertextBlob: b64(encryptWith(key, plaintext, ctx)), KeyId: key.arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
    },

    Decrypt(input) {
      const blob = reqBlob(input, 'CiphertextBlob', 6144);
      const ctx = optContext(input, 'EncryptionContext');
      checkEncryptionAlgorithm(input, 'EncryptionAlgorithm');
      const { key, plaintext } = decryptBlob(blob, ctx, optString(input, 'KeyId'));
      return { KeyId: key.arn, Plaintext: b64(plaintext), EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
    },

    ReEncrypt(input) {
      const blob = reqBlob(input, 'CiphertextBlob', 6144);
      const destination = symmetricKey(reqString(input, 'DestinationKeyId'));
      checkEncryptionAlgorithm(input, 'SourceEncryptionAlgorithm');
      checkEncryptionAlgorithm(input, 'DestinationEncryptionAlgorithm');
      const source = decryptBlob(blob, optContext(input, 'SourceEncryptionContext'), optString(input, 'SourceKeyId'));
      assertUsable(destination);
      return {
        CiphertextBlob: b64(encryptWith(destination, source.plaintext, optContext(input, 'DestinationEncryptionContext'))),
        SourceKeyId: source.key.arn,
        KeyId: destination.arn,
        SourceEncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
        DestinationEncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
      };
    },

    GenerateDataKey(input) {
      const { key, plaintext, ciphertext } = generateDataKey(input);
      return { CiphertextBlob: b64(ciphertext), Plaintext: b64(plaintext), KeyId: key.arn };
    },

    GenerateDataKeyWithoutPlaintext(input) {
      const { key, ciphertext } = generateDataKey(input);
      return { CiphertextBlob: b64(ciphertext), KeyId: key.arn };
    },

    GenerateRandom(input) {
      const n = optInt(input, 'NumberOfBytes', 1, 1024);
      if (n === undefined) throw validation('NumberOfBytes is required');
      return { Plaintext: b64(crypto.randomBytes(n)) };
    },

    Sign(input) {
      const { key, alg } = signingKey(reqString(input, 'KeyId'), reqString(input, 'SigningAlgorithm'));
      const { messageType, message } = signingMessage(input, alg);
      assertUsable(key);
      return { KeyId: key.arn, Signature: b64(sign(key, alg, messageType, message)), SigningAlgorithm: reqString(input, 'SigningAlgorithm') };
    },

    Verify(input) {
      const algName = reqString(input, 'SigningAlgorithm');
      const { key, alg } = signingKey(reqString(input, 'KeyId'), algName);
      const { messageType, message } = signingMessage(input, alg);
      const signature = reqBlob(input, 'Signature', 6144);
      assertUsable(key);
      if (!verify(key, alg, messageType, message, signature)) {
        throw new KmsError('KMSInvalidSignatureException', 'The signature is not valid for this key, algorithm and message.');
      }
      return { KeyId: key.arn, SignatureValid: true, SigningAlgorithm: algName };
    },

    GetPublicKey(input) {
      const key = resolveKey(reqString(input, 'KeyId'));
      if (!key.spki) throw new KmsError('UnsupportedOperationException', `${key.arn} key usage is ${key.usage} which is not valid for GetPublicKey.`);
      assertUsable(key);
      return {
        KeyId: key.arn,
        PublicKey: b64(key.spki),
        CustomerMasterKeySpec: key.spec,
        KeySpec: key.spec,
        KeyUsage: key.usage,
        SigningAlgorithms: key.signingAlgorithms,
      };
    },
  };

  function generateDataKey(input: Input) {
    const key = symmetricKey(reqString(input, 'KeyId'));
    const spec = optString(input, 'KeySpec');
    const count = optInt(input, 'NumberOfBytes', 1, 1024);
    const ctx = optContext(input, 'EncryptionContext');
    if (spec === undefined && count === undefined) throw validation('Please specify either number of bytes or key spec.');
    if (spec !== undefined && count !== undefined) throw validation('Please specify either number of bytes or key spec, not both.');
    let len: number;
    if (spec === 'AES_256') len = 32;
    else if (spec === 'AES_128') len = 16;
    else if (spec !== undefined) throw validation(`1 validation error detected: Value '${spec}' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]`);
    else len = count as number;
    assertUsable(key);
    const plaintext = crypto.randomBytes(len);
    return { key, plaintext, ciphertext: encryptWith(key, plaintext, ctx) };
  }

  function signingMessage(input: Input, alg: SigningAlg): { messageType: 'RAW' | 'DIGEST'; message: Buffer } {
    const messageType = optString(input, 'MessageType') ?? 'RAW';
    if (messageType !== 'RAW' && messageType !== 'DIGEST') {
      throw validation(`1 validation error detected: Value '${messageType}' at 'messageType' failed to satisfy constraint: Member must satisfy enum value set: [RAW, DIGEST]`);
    }
    const message = reqBlob(input, 'Message', 4096);
    if (messageType === 'DIGEST' && message.length !== alg.hashLen) {
      throw validation(`Digest is invalid length for algorithm ${Object.keys(SIGNING_ALGS).find((k) => SIGNING_ALGS[k] === alg)}.`);
    }
    return { messageType, message };
  }

  function sign(key: KeyRecord, alg: SigningAlg, type: 'RAW' | 'DIGEST', message: Buffer): Buffer {
    const priv = key.privateKey as KeyObject;
    if (type === 'RAW') {
      if (alg.kind === 'ecdsa') return crypto.sign(alg.hash, message, { key: priv, dsaEncoding: 'der' });
      if (alg.kind === 'pkcs1') return crypto.sign(alg.hash, message, { key: priv, padding: crypto.constants.RSA_PKCS1_PADDING });
      return crypto.sign(alg.hash, message, { key: priv, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: alg.hashLen });
    }
    if (alg.kind === 'ecdsa') return ecdsaSignDigest(key.curve as CurveParams, key.ecD as bigint, message);
    if (alg.kind === 'pkcs1') {
      return crypto.privateEncrypt({ key: priv, padding: crypto.constants.RSA_PKCS1_PADDING }, Buffer.concat([DIGEST_INFO_PREFIX[alg.hash], message]));
    }
    return crypto.privateEncrypt({ key: priv, padding: crypto.constants.RSA_NO_PADDING }, pssEncode(message, alg, key.modBits as number));
  }

  function verify(key: KeyRecord, alg: SigningAlg, type: 'RAW' | 'DIGEST', message: Buffer, signature: Buffer): boolean {
    const pub = key.publicKey as KeyObject;
    try {
      if (type === 'RAW') {
        if (alg.kind === 'ecdsa') return crypto.verify(alg.hash, message, { key: pub, dsaEncoding: 'der' }, signature);
        if (alg.kind === 'pkcs1') return crypto.verify(alg.hash, message, { key: pub, padding: crypto.constants.RSA_PKCS1_PADDING }, signature);
        return crypto.verify(alg.hash, message, { key: pub, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: alg.hashLen }, signature);
      }
      if (alg.kind === 'ecdsa') return ecdsaVerifyDigest(key.curve as CurveParams, key.ecQ as Point, message, signature);
      const k = Math.ceil((key.modBits as number) / 8);
      if (signature.length !== k) return false;
      if (alg.kind === 'pkcs1') {
        const decoded = crypto.publicDecrypt({ key: pub, padding: crypto.constants.RSA_PKCS1_PADDING }, signature);
        return decoded.equals(Buffer.concat([DIGEST_INFO_PREFIX[alg.hash], message]));
      }
      const decoded = crypto.publicDecrypt({ key: pub, padding: crypto.constants.RSA_NO_PADDING }, signature);
      return pssVerify(message, decoded, alg, key.modBits as number);
    } catch {
      return false;
    }
  }

  // ------------------------------------------------ HTTP

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const entry = {
        resolve: () => {
          sleepers.delete(entry);
          resolve();
        },
        timer: setTimeout(() => entry.resolve(), ms),
      };
      sleepers.add(entry);
    });
  }

  function takeFault(op: string): KmsError | undefined {
    const f = faults.find((x) => x.remaining > 0 && (x.operation === undefined || x.operation === op));
    if (!f) return undefined;
    f.remaining--;
    faults = faults.filter((x) => x.remaining > 0);
    return new KmsError(f.name, f.message, f.status);
  }

  function checkThrottle(): KmsError | undefined {
    if (throttle === null) return undefined;
    const now = Date.now();
    accepted = accepted.filter((t) => now - t < 1000);
    if (accepted.length >= throttle) return new KmsError('ThrottlingException', 'Rate exceeded');
    accepted.push(now);
    return undefined;
  }

  function readBody(req: IncomingMessage): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > 1 << 20) {
          reject(new KmsError('ValidationException', 'Request body too large', 413));
          req.destroy();
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => resolve(Buffer.concat(chunks)));
      req.on('error', reject);
    });
  }

  function send(res: ServerResponse, status: number, body: object) {
    if (res.destroyed || res.socket?.destroyed) return;
    const data = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/x-amz-json-1.1',
      'content-length': Buffer.byteLength(data),
      'x-amzn-requestid': crypto.randomUUID(),
    });
    res.end(data);
  }

  function sendError(res: ServerResponse, err: KmsError) {
    send(res, err.status, { __type: err.code, message: err.message });
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    if (isDown || closed) {
      req.socket.destroy();
      return;
    }
    const target = req.headers['x-amz-target'];
    const op = typeof target === 'string' && target.startsWith('TrentService.') ? target.slice('TrentService.'.length) : undefined;
    if (op !== undefined) calls[op] = (calls[op] ?? 0) + 1;
    // faults are decided on arrival, so concurrent requests see them in order
    const fault = op !== undefined ? (takeFault(op) ?? checkThrottle()) : undefined;
    let body: Buffer;
    try {
      body = await readBody(req);
    } catch (e) {
      if (e instanceof KmsError) sendError(res, e);
      return;
    }
    if (latencyMs > 0) await sleep(latencyMs);
    if (isDown || closed) {
      req.socket.destroy();
      return;
    }
    if (req.method !== 'POST' || op === undefined || !Object.hasOwn(operations, op)) {
      sendError(res, new KmsError('UnknownOperationException', `Unknown operation ${String(target)}`));
      return;
    }
    if (fault) {
      sendError(res, fault);
      return;
    }
    const contentType = req.headers['content-type'] ?? '';
    if (!contentType.startsWith('application/x-amz-json-1.1')) {
      sendError(res, new KmsError('SerializationException', `Content-Type must be application/x-amz-json-1.1, got ${contentType}`, 415));
      return;
    }
    let input: unknown;
    try {
      input = body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
    } catch {
      sendError(res, new KmsError('SerializationException', 'Request body is not valid JSON'));
      return;
    }
    if (typeof input !== 'object' || input === null || Array.isArray(input)) {
      sendError(res, new KmsError('SerializationException', 'Request body must be a JSON object'));
      return;
    }
    try {
      send(res, 200, await operations[op](input as Input));
    } catch (e) {
      if (e instanceof KmsError) sendError(res, e);
      else sendError(res, new KmsError('KMSInternalException', e instanceof Error ? e.message : String(e)));
    }
  }

  const server = http.createServer((req, res) => {
    void handle(req, res);
  });
  server.on('connection', (socket: Socket) => {
    if (isDown || closed) {
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        resolve();
      });
    });

  const stopListening = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      sockets.clear();
      if (!server.listening) {
        resolve();
        return;
      }
      server.close(() => resolve());
      server.closeAllConnections();
    });

  await listen(opts.port ?? 0);
  const port = (server.address() as AddressInfo).port;
  const endpoint = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  const api: KmsTestServer = {
    endpoint,
    port,
    region,
    accountId,
    get calls() {
      return calls;
    },
    get totalCalls() {
      return Object.values(calls).reduce((a, b) => a + b, 0);
    },
    get isDown() {
      return isDown;
    },

    async createKey(spec) {
      const o: CreateKeyOptions = typeof spec === 'string' ? { keySpec: spec } : (spec ?? {});
      const keySpec = o.keySpec ?? 'SYMMETRIC_DEFAULT';
      const usage = o.keyUsage ?? KEY_SPECS[keySpec]?.usage ?? 'ENCRYPT_DECRYPT';
      const key = await createKeyRecord(keySpec, usage, o.description ?? '', o.keyId, o.privateKey);
      if (o.alias) addAlias(o.alias, key.id);
      return keyInfo(key);
    },

    createAlias(aliasName, keyId) {
      addAlias(aliasName, keyId);
    },

    getKey(keyId) {
      try {
        return keyInfo(resolveKey(keyId));
      } catch {
        return undefined;
      }
    },

    failNext(n, errorName, o = {}) {
      if (!Number.isInteger(n) || n < 0) throw new RangeError(`failNext: n must be a non-negative integer, got ${n}`);
      if (n === 0) return;
      faults.push({
        remaining: n,
        name: errorName,
        message: o.message ?? `Injected ${errorName}`,
        ...(o.operation !== undefined ? { operation: o.operation } : {}),
        status: o.statusCode ?? defaultStatus(errorName),
      });
    },

    setLatency(ms) {
      if (!(ms >= 0)) throw new RangeError(`setLatency: ms must be >= 0, got ${ms}`);
      latencyMs = ms;
    },

    setThrottle(maxPerSecond) {
      throttle = maxPerSecond === null || maxPerSecond === 0 || maxPerSecond === Infinity ? null : Math.max(0, Math.floor(maxPerSecond));
      accepted = [];
    },

    async down() {
      if (closed || isDown) return;
      isDown = true;
      await stopListening();
      // let in-process clients notice that their pooled connections are gone
      await new Promise((resolve) => setTimeout(resolve, 20));
    },

    async up() {
      if (closed || !isDown) return;
      isDown = false;
      await listen(port);
    },

    async reset(o = {}) {
      faults = [];
      latencyMs = 0;
      throttle = null;
      accepted = [];
      zeroCalls();
      if (o.keys) {
        keys.clear();
        aliases.clear();
      }
      await api.up();
    },

    async close() {
      if (closed) return;
      closed = true;
      for (const s of [...sleepers]) {
        clearTimeout(s.timer);
        s.resolve();
      }
      await stopListening();
    },
  };
  return api;
}

// ---------------------------------------------------------------- standalone

async function main(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string', default: '4599' },
      host: { type: 'string', default: '127.0.0.1' },
      region: { type: 'string', default: 'us-east-1' },
      key: { type: 'string', multiple: true, default: [] },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      'usage: node test/support/kms-server.ts [--port 4599] [--host 127.0.0.1] [--region us-east-1]\n' +
        '                                       [--key SPEC[=alias/name]]...\n' +
        'Prints the endpoint, then "<key arn> <spec> [alias]" for each --key, and serves until killed.\n',
    );
    return;
  }
  const port = Number.parseInt(values.port, 10);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid --port ${values.port}`);
  const server = await startKmsServer({ port, host: values.host, region: values.region });
  process.stdout.write(`${server.endpoint}\n`);
  for (const k of values.key) {
    const [spec, alias] = k.split('=', 2);
    const info = await server.createKey({ keySpec: spec as KmsKeySpec, ...(alias ? { alias } : {}) });
    process.stdout.write(`${info.arn} ${info.keySpec}${alias ? ` ${alias}` : ''}\n`);
  }
  const stop = () => {
    void server.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

function isMainModule(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMainModule()) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
