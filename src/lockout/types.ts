// The lockout seam is defined by the login flow (src/interactions/guard.ts);
// lockout implements it. Re-exported here for lockout's own files and tests.
export * from '../interactions/guard.ts';
