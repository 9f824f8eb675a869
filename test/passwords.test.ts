import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import argon2 from 'argon2';
import { expect } from 'chai';
import {
  DEFAULT_ARGON2_PARAMS,
  detectScheme,
  hashPassword,
  isKnownScheme,
  KNOWN_SCHEMES,
  MAX_PASSWORD_BYTES,
  needsRehash,
  validateCredential,
  verifyArgon2,
  verifyLegacy,
} from '../src/passwords/index.ts';
import type { LegacyCredential, LegacySecrets } from '../src/passwords/index.ts';

interface Vector {
  id: string;
  scheme: string;
  tool: string;
  password: string;
  credential: LegacyCredential;
}

interface Fixture {
  secrets: LegacySecrets;
  vectors: Vector[];
}

// Made by test/fixtures/gen-password-vectors.sh with independent tools (mkpasswd,
// php, htpasswd, openssl, the argon2 CLI, passlib, Django, Werkzeug, hashlib) and
// published vectors (Firebase's scrypt README, John the Ripper's Drupal 7 tests).
const fixture = JSON.parse(readFileSync(new URL('./fixtures/password-vectors.json', import.meta.url), 'utf8')) as Fixture;
const secrets = fixture.secrets;

/** The password with its last character replaced by the next code point. */
function oneCharChanged(pw: string): string {
  const chars = [...pw];
  const last = chars.pop() ?? 'a';
  return chars.join('') + String.fromCodePoint((last.codePointAt(0) ?? 0x61) + 1);
}

/** The password with the case of every letter swapped. */
function wrongCase(pw: string): string {
  return pw.replace(/\p{L}/gu, (c) => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()));
}

const byScheme = new Map<string, Vector[]>();
for (const v of fixture.vectors) byScheme.set(v.scheme, [...(byScheme.get(v.scheme) ?? []), v]);

describe('passwords: legacy schemes against independent test vectors', () => {
  it('has vectors from independent tools for every known scheme', () => {
    expect(fixture.vectors.length).to.be.greaterThan(100);
    for (const scheme of KNOWN_SCHEMES) expect(byScheme.has(scheme), `vectors for ${scheme}`).to.equal(true);
    for (const v of fixture.vectors) expect(v.tool, v.id).to.be.a('string').and.not.match(/src\/passwords/);
  });

  for (const [scheme, vectors] of byScheme) {
    describe(scheme, () => {
      for (const v of vectors) {
        it(`${v.id} (${v.tool})`, async () => {
          const { credential: cred, password } = v;
          expect(isKnownScheme(scheme)).to.equal(true);
          if (cred.scheme === undefined) expect(detectScheme(cred.hash)).to.equal(scheme);
          else expect([undefined, cred.scheme]).to.include(detectScheme(cred.hash));
          expect(validateCredential(cred, secrets)).to.equal(undefined);

          expect(await verifyLegacy(cred, password, secrets), 'right password').to.equal(true);
          const wrong = [oneCharChanged(password), wrongCase(password), ''];
          expect(wrong[1]).to.not.equal(password);
          for (const w of wrong) expect(await verifyLegacy(cred, w, secrets), `wrong password ${JSON.stringify(w)}`).to.equal(false);
        });
      }
    });
  }

  it('does not verify keyed schemes without the configured secret', async () => {
    const hmac = byScheme.get('hmac-sha256')![0];
    expect(await verifyLegacy(hmac.credential, hmac.password, {})).to.equal(false);
    expect(await verifyLegacy({ ...hmac.credential, key: 'missing' }, hmac.password, secrets)).to.equal(false);
    const firebase = byScheme.get('firebase-scrypt')![0];
    expect(await verifyLegacy(firebase.credential, firebase.password, {})).to.equal(false);
    expect(await verifyLegacy({ ...firebase.credential, key: 'missing' }, firebase.password, secrets)).to.equal(false);
  });

  it('accepts an explicit scheme name on a self-describing hash, and upper-case hex digests', async () => {
    const bcrypt = byScheme.get('bcrypt')![0];
    expect(await verifyLegacy({ scheme: 'BCRYPT', hash: bcrypt.credential.hash }, bcrypt.password, secrets)).to.equal(true);
    const md5 = fixture.vectors.find((x) => x.credential.scheme === 'md5' && x.credential.encoding === undefined && !x.credential.salt)!;
    expect(await verifyLegacy({ ...md5.credential, hash: md5.credential.hash.toUpperCase() }, md5.password, secrets)).to.equal(true);
  });

  it('does not verify when a salt is put on the wrong side', async () => {
    const v = fixture.vectors.find((x) => x.credential.scheme === 'sha256' && x.credential.saltPosition === 'prefix')!;
    expect(await verifyLegacy(v.credential, v.password, secrets)).to.equal(true);
    expect(await verifyLegacy({ ...v.credential, saltPosition: 'suffix' }, v.password, secrets)).to.equal(false);
  });
});

describe('passwords: detectScheme', () => {
  const cases: [string, string | undefined][] = [
    ['$2y$04$abcdefghijklmnopqrstuu5Gy0N0aVM6PsvChn5ZBcUtsiEBPOFoO', 'bcrypt'],
    ['$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA', 'argon2id'],
    ['$scrypt$ln=4,r=8,p=1$c2FsdA$aGFzaA', 'scrypt'],
    ['$7$BU..../....salt$hash', 'scrypt-crypt'],
    ['$1$salt$hash', 'md5-crypt'],
    ['$apr1$salt$hash', 'apr1-md5'],
    ['$5$salt$hash', 'sha256-crypt'],
    ['$6$rounds=1000$salt$hash', 'sha512-crypt'],
    ['$P$Babcdefgh', 'phpass'],
    ['$H$9abcdefgh', 'phpass'],
    ['$S$Cabcdefgh', 'drupal7'],
    ['pbkdf2_sha256$1000$salt$hash', 'django-pbkdf2-sha256'],
    ['bcrypt_sha256$$2b$04$x', 'django-bcrypt-sha256'],
    ['$pbkdf2-sha512$1000$salt$hash', 'passlib-pbkdf2-sha512'],
    ['pbkdf2:sha256:1000$salt$hex', 'werkzeug-pbkdf2'],
    ['{ssha}abc', 'ldap-ssha'],
    ['{CRYPT}$6$x', 'ldap-crypt'],
    ['$3$$8846f7eaee8fb117ad06bdd830b7586c', 'nt'],
    ['5f4dcc3b5aa765d61d8327deb882cf99', undefined],
    ['', undefined],
    ['{ROT13}abc', undefined],
  ];
  for (const [hash, scheme] of cases) {
    it(`${JSON.stringify(hash)} -> ${scheme}`, () => expect(detectScheme(hash)).to.equal(scheme));
  }
});

describe('passwords: validateCredential reasons', () => {
  const bad: [string, LegacyCredential, RegExp, LegacySecrets?][] = [
    ['unknown scheme', { scheme: 'rot13', hash: 'abc' }, /unknown scheme 'rot13'/],
    ['undetectable hash without a scheme', { hash: '5f4dcc3b5aa765d61d8327deb882cf99' }, /name its scheme/],
    ['empty hash', { hash: '' }, /no hash/],
    ['malformed bcrypt', { hash: '$2b$04$tooshort' }, /bcrypt/],
    ['bcrypt cost out of range', { hash: '$2b$99$abcdefghijklmnopqrstuu5Gy0N0aVM6PsvChn5ZBcUtsiEBPOFoO' }, /cost/],
    ['bcrypt $2x$', { hash: '$2x$04$abcdefghijklmnopqrstuu5Gy0N0aVM6PsvChn5ZBcUtsiEBPOFoO' }, /\$2x\$/],
    ['malformed sha512-crypt', { hash: '$6$rounds=1000$salt$short' }, /checksum/],
    ['sha-crypt rounds below the minimum', { hash: `$6$rounds=10$salt$${'a'.repeat(86)}` }, /rounds/],
    ['malformed md5-crypt', { hash: '$1$waytoolongsalt$abc' }, /md5-crypt/],
    ['malformed phpass', { hash: '$P$Bshort' }, /phpass/],
    ['malformed argon2', { hash: '$argon2id$v=19$m=abc' }, /argon2/],
    ['argon2 memory over the limit', { hash: '$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g' }, /memory/],
    ['scrypt memory over the limit', { hash: '$scrypt$ln=24,r=8,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA' }, /MiB/],
    ['{CRYPT} with DES crypt', { hash: '{CRYPT}abJnggxhB/yWI' }, /not supported/],
    ['{SSHA} without a salt', { hash: '{SSHA}h0Vy56WuaklGamrFeLmK26eMaqY=' }, /SSHA/],
    ['self-describing hash with a salt', { hash: '$2b$04$abcdefghijklmnopqrstuu5Gy0N0aVM6PsvChn5ZBcUtsiEBPOFoO', salt: 'x' }, /salt does not apply/],
    ['scheme that does not match the hash', { scheme: 'bcrypt', hash: '$1$salt$abcdefghijklmnopqrstuv' }, /bcrypt/],
    ['digest of the wrong length', { scheme: 'sha256', hash: 'abcd' }, /32-byte/],
    ['digest that is not hex', { scheme: 'md5', hash: 'zz'.repeat(16), encoding: 'hex' }, /hex/],
    ['salt without saltPosition', { scheme: 'md5', hash: '5f4dcc3b5aa765d61d8327deb882cf99', salt: 'x' }, /saltPosition/],
    ['hmac without a key name', { scheme: 'hmac-sha256', hash: 'ab'.repeat(32) }, /key/],
    ['hmac with an unconfigured key', { scheme: 'hmac-sha256', hash: 'ab'.repeat(32), key: 'nope' }, /no HMAC key named 'nope'/, { hmacKeys: {} }],
    ['pbkdf2 without iterations', { scheme: 'pbkdf2-sha256', hash: 'ab'.repeat(32), salt: 's' }, /iterations/],
    ['pbkdf2 with absurd iterations', { scheme: 'pbkdf2-sha256', hash: 'ab'.repeat(32), iterations: 1e12 }, /limit/],
    ['pbkdf2 keyLength mismatch', { scheme: 'pbkdf2-sha1', hash: 'ab'.repeat(20), iterations: 10, keyLength: 32 }, /keyLength/],
    ['firebase without a salt', { scheme: 'firebase-scrypt', hash: 'aGFzaA==' }, /salt/],
    ['firebase without project parameters', { scheme: 'firebase-scrypt', hash: 'aGFzaA==', salt: 'c2FsdA==' }, /Firebase project/, {}],
    ['nt hash with a salt', { scheme: 'nt', hash: '8846f7eaee8fb117ad06bdd830b7586c', salt: 'x' }, /no salt/],
  ];
  for (const [name, cred, reason, sec] of bad) {
    it(name, async () => {
      expect(validateCredential(cred, sec)).to.be.a('string').and.match(reason);
      expect(await verifyLegacy(cred, 'password', sec ?? secrets)).to.equal(false);
    });
  }

  it('never throws on garbage input', async () => {
    const garbage: unknown[] = [null, undefined, 42, 'str', [], {}, { hash: 5 }, { hash: '$2b$' }, { scheme: 7, hash: 'x' }, { scheme: 'md5', hash: {} }];
    for (const g of garbage) {
      expect(validateCredential(g as LegacyCredential)).to.be.a('string');
      expect(await verifyLegacy(g as LegacyCredential, 'password', secrets)).to.equal(false);
      expect(detectScheme(g as string)).to.equal(undefined);
    }
    const v = fixture.vectors[0];
    expect(await verifyLegacy(v.credential, undefined as unknown as string, secrets)).to.equal(false);
    expect(await verifyLegacy(v.credential, 'x'.repeat(MAX_PASSWORD_BYTES + 1), secrets)).to.equal(false);
  });

  it('isKnownScheme', () => {
    expect(isKnownScheme('bcrypt')).to.equal(true);
    expect(isKnownScheme('HMAC-SHA256')).to.equal(true);
    expect(isKnownScheme('firebase-scrypt')).to.equal(true);
    expect(isKnownScheme('md4')).to.equal(true);
    expect(isKnownScheme('rot13')).to.equal(false);
    expect(isKnownScheme('')).to.equal(false);
  });
});

describe('passwords: costly schemes do not block the event loop', () => {
  /**
   * Runs `work` while counting 1 ms timer turns and the longest event-loop
   * delay. A loop that blocked would show one delay as long as the whole run
   * and almost no timer turns; ours yields every few milliseconds (the bound
   * is loose because a GC pause can add tens of milliseconds on a busy heap).
   */
  async function measure(work: () => Promise<boolean>) {
    const h = monitorEventLoopDelay({ resolution: 1 });
    let turns = 0;
    const timer = setInterval(() => turns++, 1);
    h.enable();
    const start = performance.now();
    const result = await work();
    const totalMs = performance.now() - start;
    h.disable();
    clearInterval(timer);
    return { result, totalMs, maxDelayMs: h.max / 1e6, turns };
  }

  it('sha512-crypt with rounds=150000 yields while it works', async () => {
    // Well formed, wrong checksum: the full rounds loop runs, then compares false.
    const hash = `$6$rounds=150000$saltsalt$${'.'.repeat(86)}`;
    const m = await measure(() => verifyLegacy({ hash }, 'password', secrets));
    expect(m.result).to.equal(false);
    expect(m.turns, JSON.stringify(m)).to.be.at.least(10);
    expect(m.maxDelayMs, JSON.stringify(m)).to.be.below(m.totalMs / 2);
  });

  it('phpass with 2^18 iterations yields while it works', async () => {
    const hash = `$P$G12345678${'.'.repeat(22)}`; // 'G' = 2^18
    const m = await measure(() => verifyLegacy({ hash }, 'password', secrets));
    expect(m.result).to.equal(false);
    expect(m.turns, JSON.stringify(m)).to.be.at.least(10);
    expect(m.maxDelayMs, JSON.stringify(m)).to.be.below(m.totalMs / 2);
  });
});

describe('passwords: argon2id', () => {
  const fast = { memoryKiB: 1024, timeCost: 1, parallelism: 1 };

  it('hashes with the OWASP defaults and verifies', async () => {
    expect(DEFAULT_ARGON2_PARAMS).to.deep.equal({ memoryKiB: 19456, timeCost: 2, parallelism: 1 });
    const hash = await hashPassword('Tr0ub4dor&3');
    expect(hash).to.match(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(await verifyArgon2(hash, 'Tr0ub4dor&3')).to.equal(true);
    expect(await verifyArgon2(hash, 'Tr0ub4dor&4')).to.equal(false);
    expect(await verifyArgon2(hash, 'tR0UB4DOR&3')).to.equal(false);
    expect(await verifyArgon2(hash, '')).to.equal(false);
    expect(needsRehash(hash)).to.equal(false);
    // Our own hashes go through the comparator too.
    expect(detectScheme(hash)).to.equal('argon2id');
    expect(await verifyLegacy({ hash }, 'Tr0ub4dor&3')).to.equal(true);
  });

  it('uses a fresh salt per hash and honours params', async () => {
    const a = await hashPassword('pässwörd€', fast);
    const b = await hashPassword('pässwörd€', fast);
    expect(a).to.not.equal(b);
    expect(a).to.match(/^\$argon2id\$v=19\$m=1024,t=1,p=1\$/);
    expect(await verifyArgon2(a, 'pässwörd€')).to.equal(true);
    expect(await verifyArgon2(b, 'passwörd€')).to.equal(false);
  });

  it('needsRehash: different costs, other argon2 variants, legacy and malformed hashes', async () => {
    const hash = await hashPassword('x', fast);
    expect(needsRehash(hash, fast)).to.equal(false);
    expect(needsRehash(hash)).to.equal(true);
    expect(needsRehash(hash, { ...fast, timeCost: 2 })).to.equal(true);
    expect(needsRehash(hash, { ...fast, parallelism: 2 })).to.equal(true);
    expect(needsRehash('$argon2i$v=19$m=1024,t=1,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNo', fast)).to.equal(true);
    expect(needsRehash('$2b$04$abcdefghijklmnopqrstuu5Gy0N0aVM6PsvChn5ZBcUtsiEBPOFoO', fast)).to.equal(true);
    expect(needsRehash('garbage', fast)).to.equal(true);
  });

  it("writes parameters in the reference m,t,p order and reads the argon2 package's own m,p,t order", async () => {
    expect(await hashPassword('x', fast)).to.match(/\$m=1024,t=1,p=1\$/);
    const theirs = await argon2.hash('x', { type: argon2.argon2id, memoryCost: 1024, timeCost: 1, parallelism: 1 });
    expect(theirs).to.match(/\$m=1024,p=1,t=1\$/);
    expect(await verifyArgon2(theirs, 'x')).to.equal(true);
    expect(await verifyLegacy({ hash: theirs }, 'x')).to.equal(true);
    expect(needsRehash(theirs, fast)).to.equal(false);
  });

  it('verifyArgon2 returns false on malformed hashes and rejects bad params', async () => {
    expect(await verifyArgon2('not a hash', 'x')).to.equal(false);
    expect(await verifyArgon2('$argon2id$v=19$m=1024,t=1,p=1$$', 'x')).to.equal(false);
    let err: unknown;
    try {
      await hashPassword('x', { memoryKiB: 1 });
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(RangeError);
  });
});
