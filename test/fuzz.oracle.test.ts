// The fuzzer's oracle (test/support/fuzz.ts) catches what it is meant to
// catch: a fuzz run that passes means something only if a bad answer fails.
// Each case is an answer the IdP must never give, and one it may.
import { expect } from 'chai';
import { violations, type Answer } from './support/fuzz.ts';

const ORIGIN = 'http://127.0.0.1:3000';
const oracle = { origin: ORIGIN, offsite: ['https://rp.example.test/cb'] };

function answer(status: number, body: string, headers: Record<string, string> = {}): Answer {
  return { method: 'GET', url: `${ORIGIN}/interaction/x`, status, body, headers: { 'x-content-type-options': 'nosniff', 'content-type': 'text/html; charset=utf-8', ...headers } };
}
const page = (inner: string) => `<!DOCTYPE html><html><body><main class="card">${inner}</main></body></html>`;
const errorPage = page('<h1>Something went wrong</h1><p class="details">Error code: <code>invalid_request</code></p>');

describe('the fuzz oracle', () => {
  it('accepts our error page, a form page, a JSON OAuth error, a redirect to a registered URI, and the form_post page', () => {
    expect(violations(answer(400, errorPage), oracle)).to.deep.equal([]);
    expect(violations(answer(200, page('<form method="post" action="/x"></form>')), oracle)).to.deep.equal([]);
    expect(violations(answer(400, '{"error":"invalid_grant","error_description":"grant request is invalid"}', { 'content-type': 'application/json; charset=utf-8' }), oracle)).to.deep.equal([]);
    expect(violations(answer(303, '', { location: 'https://rp.example.test/cb?error=access_denied' }), oracle)).to.deep.equal([]);
    expect(violations(answer(400, '<form method="post" action="https://rp.example.test/cb"><input type="hidden" name="error" value="x"></form>'), oracle)).to.deep.equal([]);
  });

  it('refuses a 5xx, a stack trace, a source path, an internal error name', () => {
    expect(violations(answer(500, errorPage), oracle)).to.include('status 500');
    expect(violations(answer(503, errorPage), oracle)).to.include('status 503');
    expect(violations(answer(400, page('Error: x\n    at Object.<anonymous> (/app/src/x.ts:3:9)')), oracle).join()).to.match(/stack trace/);
    expect(violations(answer(400, page('see /work/main/node_modules/koa/lib/application.js:1')), oracle).join()).to.match(/stack trace/);
    expect(violations(answer(400, '{"error":"server_error","error_description":"TypeError: x is undefined"}', { 'content-type': 'application/json' }), oracle).join()).to.match(/internal name/);
  });

  it('refuses input reflected unescaped: a tag, an attribute break-out, a javascript: URL in an attribute', () => {
    expect(violations(answer(400, page('<p class="details">you sent <fz></p>')), oracle).join()).to.match(/reflected/);
    expect(violations(answer(200, page('<input value="a"onfz=1 x="">')), oracle).join()).to.match(/reflected/);
    expect(violations(answer(200, page('<a href="javascript:fz()">x</a>')), oracle).join()).to.match(/reflected/);
    // escaped, it is fine
    expect(violations(answer(400, page('<p class="details">you sent &lt;fz&gt; &#34;onfz=1</p>')), oracle)).to.deep.equal([]);
  });

  it('refuses what is neither an OAuth error nor a page: text/plain, a JSON error without error, an empty 4xx, HTML that is not ours', () => {
    expect(violations(answer(404, 'Not Found', { 'content-type': 'text/plain; charset=utf-8' }), oracle).join()).to.match(/neither an OAuth error nor a page/);
    expect(violations(answer(400, '{"message":"bad"}', { 'content-type': 'application/json' }), oracle).join()).to.match(/without a well-formed "error"/);
    expect(violations(answer(400, '{"error":"bad \\"quote\\""}', { 'content-type': 'application/json' }), oracle).join()).to.match(/well-formed/);
    expect(violations(answer(400, ''), oracle).join()).to.match(/empty 400/);
    expect(violations(answer(400, '<html><body>Bad Request</body></html>'), oracle).join()).to.match(/not a message page/);
  });

  it('refuses a redirect off the IdP to anywhere not registered, and an answer without nosniff', () => {
    expect(violations(answer(302, '', { location: 'https://evil.example/' }), oracle).join()).to.match(/off the IdP/);
    expect(violations(answer(302, '', { location: '//evil.example/x' }), oracle).join()).to.match(/off the IdP/);
    expect(violations(answer(302, ''), oracle).join()).to.match(/without Location/);
    expect(violations({ ...answer(400, errorPage), headers: { 'content-type': 'text/html' } }, oracle).join()).to.match(/nosniff/);
  });
});
