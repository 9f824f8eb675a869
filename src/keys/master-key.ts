// The local master key: 256 random bits in DATA_DIR/master.key, mode 0600,
// created on first start. It wraps every private key and data key that the
// `local` keyring stores in DynamoDB, with AES-256-GCM.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { KeyIntegrityError } from './types.ts';

export function loadOrCreateMasterKey(dataDir: string): Buffer {
  const file = path.join(dataDir, 'master.key');
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  try {
    const fd = fs.openSync(file, 'wx', 0o600);
    fs.writeSync(fd, crypto.randomBytes(32).toString('base64') + '\n');
    fs.closeSync(fd);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const mode = fs.statSync(file).mode & 0o777;
  if (mode & 0o077) throw new Error(`${file} must not be readable by group or others (mode is ${mode.toString(8)}; run chmod 600)`);
  const key = Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64');
  if (key.length !== 32) throw new Error(`${file} must hold 32 bytes in base64`);
  return key;
}

const VERSION = 'l1';

/** AES-256-GCM with a random 96-bit nonce; the context is authenticated (AAD). */
export function sealLocal(master: Buffer, plaintext: Buffer, context: string): string {
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', master, iv);
  cipher.setAAD(Buffer.from(context));
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return [VERSION, iv.toString('base64url'), ct.toString('base64url'), cipher.getAuthTag().toString('base64url')].join('.');
}

export function openLocal(master: Buffer, sealed: string, context: string): Buffer {
  const [v, iv, ct, tag] = sealed.split('.');
  if (v !== VERSION || !iv || !ct || !tag) throw new KeyIntegrityError(`wrapped secret for ${context} is malformed`, context);
  try {
    const decipher = crypto.createDecipheriv('aes-256-gcm', master, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(context));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]);
  } catch {
    throw new KeyIntegrityError(`wrapped secret for ${context} failed authentication (tampered or wrong master key)`, context);
  }
}
