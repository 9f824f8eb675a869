// The KMS of the bench's keys-modes phase, in a process of its own: the
// KMS-compatible test server (test/support/kms-server.ts) with one symmetric
// key (KMS_KEY_ID of kms-envelope and kms-sign; in kms-sign the IdP creates
// its signing keys itself with CreateKey). Its CPU time is not the IdP's, and
// it answers { type: 'calls' } over IPC with the server's per-operation
// request counters, so the bench can report KMS requests (Sign) per token.
//
//   fork('bench/kms-owner.ts')  →  { type: 'ready', endpoint, keyId }
import { startKmsServer } from '../test/support/kms-server.ts';

const kms = await startKmsServer({ port: 0 });
const key = await kms.createKey({ keySpec: 'SYMMETRIC_DEFAULT', alias: 'alias/idp-bench-envelope', description: 'idp bench envelope key' });

process.on('message', (msg: { type?: string }) => {
  if (msg?.type === 'calls') process.send!({ type: 'calls', calls: { ...kms.calls } });
});
const stop = () => { void kms.close().then(() => process.exit(0)); };
process.on('SIGTERM', stop);
process.on('disconnect', stop);
process.send!({ type: 'ready', endpoint: kms.endpoint, keyId: key.keyId });
