// A minimal browser stand-in for protocol tests: a cookie jar, manual
// redirects, and form reading. It follows redirects while they stay on the
// IdP and stops at the first one that leaves it (the RP's redirect_uri).
export interface Form {
  action: string;
  fields: Record<string, string>;
}

export class UserAgent {
  readonly jar = new Map<string, string>();
  readonly origin: string;

  constructor(origin: string) {
    this.origin = origin;
  }

  private cookieHeader(): string {
    return [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  private store(res: Response): void {
    for (const c of res.headers.getSetCookie()) {
      const [pair, ...attrs] = c.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      const expired = attrs.some((a) => /^\s*expires=Thu, 01 Jan 1970/i.test(a)) || attrs.some((a) => /^\s*max-age=0/i.test(a));
      if (expired || value === '') this.jar.delete(name);
      else this.jar.set(name, value);
    }
  }

  async request(url: string, init: { method?: string; form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Response> {
    const headers: Record<string, string> = { accept: 'text/html', ...init.headers };
    const cookie = this.cookieHeader();
    if (cookie) headers.cookie = cookie;
    let body: string | undefined;
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form).toString();
    }
    const res = await fetch(new URL(url, this.origin), { method: init.method ?? (body ? 'POST' : 'GET'), headers, body, redirect: 'manual' });
    this.store(res);
    return res;
  }

  /** request, then follow redirects within the IdP; returns the last IdP response or the off-site Location */
  async navigate(url: string, init: { method?: string; form?: Record<string, string> } = {}): Promise<{ res: Response; url: string; offsite?: string }> {
    let res = await this.request(url, init);
    let current = new URL(url, this.origin).toString();
    for (let i = 0; i < 20 && res.status >= 300 && res.status < 400; i++) {
      const loc = new URL(res.headers.get('location')!, current).toString();
      if (!loc.startsWith(this.origin)) return { res, url: current, offsite: loc };
      current = loc;
      res = await this.request(loc);
    }
    return { res, url: current };
  }
}

function decode(s: string): string {
  return s.replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d)))
    .replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

/** the first form in html (or the one whose id is given), with its inputs' values */
export function readForm(html: string, id?: string): Form {
  const forms = [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)];
  const match = id ? forms.find((f) => new RegExp(`id="${id}"`).test(f[1])) : forms[0];
  if (!match) throw new Error(`no form${id ? ` #${id}` : ''} in page:\n${html.slice(0, 2000)}`);
  const action = decode(/action="([^"]*)"/.exec(match[1])?.[1] ?? '');
  const fields: Record<string, string> = {};
  for (const input of match[2].matchAll(/<input\b([^>]*)>/gi)) {
    const name = /name="([^"]*)"/.exec(input[1])?.[1];
    if (!name) continue;
    fields[decode(name)] = decode(/value="([^"]*)"/.exec(input[1])?.[1] ?? '');
  }
  return { action, fields };
}
