// The pages that are not part of a sign-in: the landing page at `/`
// (issuer, discovery, keys, documentation, the account page), the styled 404
// for every path nothing answers, the brand stylesheet (the operator's
// primary colour as CSS variables, so no page needs an inline style and the
// CSP stays `style-src 'self'`), and the integrator guide. All in the
// request's language (i18n.ts).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type Koa from 'koa';
import type { Views } from './views.ts';
import { noteFailure } from '../logging/failure.ts';

export interface SiteOptions {
  issuer: string;
  /** DOCS_URL: the documentation link (default: the integrator guide served below) */
  docsUrl?: string;
  /** BRAND_PRIMARY_COLOR, #rgb or #rrggbb (validated by the configuration) */
  primaryColor?: string;
}

const GUIDE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../openid-configuration.md');
export const GUIDE_PATH = '/docs/openid-configuration.md';

/** #rgb / #rrggbb -> [r, g, b] */
function rgb(hex: string): [number, number, number] {
  const h = hex.length === 4 ? hex.slice(1).split('').map((c) => c + c).join('') : hex.slice(1);
  return [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16)) as [number, number, number];
}

/** WCAG relative luminance */
function luminance([r, g, b]: [number, number, number]): number {
  const lin = (c: number) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
}

/** the brand stylesheet: the primary colour, its hover shade, and a readable colour on it; lighter in dark mode */
export function brandStylesheet(color: string): string {
  const onPrimary = luminance(rgb(color)) > 0.4 ? '#111418' : '#ffffff';
  return [
    '/* generated from BRAND_PRIMARY_COLOR (src/http/site.ts) */',
    `:root { --primary: ${color}; --primary-hover: color-mix(in srgb, ${color} 80%, black); --on-primary: ${onPrimary}; --link: ${color}; }`,
    '@media (prefers-color-scheme: dark) {',
    `  :root { --primary: color-mix(in srgb, ${color} 60%, white); --primary-hover: color-mix(in srgb, ${color} 45%, white); --on-primary: #0b1220; --link: color-mix(in srgb, ${color} 55%, white); }`,
    '}',
    '',
  ].join('\n');
}

/** the brand stylesheet's URL for the layout (versioned, so it may be cached for a day), when there is a colour */
export function brandStylesheetUrl(color: string | undefined): string | undefined {
  return color ? `/assets/brand.css?v=${crypto.createHash('sha256').update(brandStylesheet(color)).digest('base64url').slice(0, 10)}` : undefined;
}

export function site(views: Views, opts: SiteOptions) {
  const css = opts.primaryColor ? brandStylesheet(opts.primaryColor) : undefined;
  const docsUrl = opts.docsUrl ?? GUIDE_PATH;

  const html = async (ctx: Koa.Context, name: string, locals: Record<string, unknown>) => {
    ctx.type = 'html';
    ctx.set('Vary', 'Accept-Language');
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = await views.page(name, locals);
  };

  return {
    /** exact-path GET handlers (app.ts checks them before any router) */
    routes: {
      '/': (ctx: Koa.Context) => html(ctx, 'home', { title: 'Sign-in service', issuer: opts.issuer, docsUrl }),
      ...(css ? {
        '/assets/brand.css': (ctx: Koa.Context) => {
          ctx.type = 'text/css';
          ctx.set('Cache-Control', 'public, max-age=86400');
          ctx.body = css;
        },
      } : {}),
      [GUIDE_PATH]: (ctx: Koa.Context, next: Koa.Next) => {
        if (!fs.existsSync(GUIDE)) return next();
        ctx.type = 'text/plain; charset=utf-8';
        ctx.set('Cache-Control', 'public, max-age=3600');
        ctx.body = fs.createReadStream(GUIDE);
      },
    } as Record<string, Koa.Middleware>,
    /** the last middleware: nothing answered this path */
    notFound: async (ctx: Koa.Context) => {
      ctx.status = 404;
      // the request's log line says so, beside the reference the page shows
      noteFailure(ctx.state, { error: 'not_found', reason: 'no such page or endpoint' });
      if (ctx.accepts('json', 'html') === 'html') {
        await html(ctx, 'error', { title: 'Page not found', error: 'not_found', status: 404, requestId: ctx.state.requestId, links: [{ href: '/', text: 'Go to the start page' }] });
        ctx.status = 404;
      } else {
        ctx.body = { error: 'not_found', error_description: 'no such endpoint' };
      }
    },
  };
}

export type Site = ReturnType<typeof site>;
