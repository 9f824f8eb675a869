// Translations of every page: English, French and Arabic (right to left).
//
// One catalogue per language, views/locales/<lang>.json, keyed by the English
// text (en.json holds every string; fr.json and ar.json the same keys). The
// pages' own words are looked up in the templates (t, th); messages made in
// code (errors, policy refusals, the self-service and MFA pages' texts) stay
// English sentences everywhere (logs, JSON errors, the CLI) and are
// translated when a page shows them. A message with values is a key with
// placeholders ("Use at least {n} characters."): a sentence made from it is
// recognised by its pattern and the values carried over.
//
// The language of a page: `ui_locales` of the authorization request (the
// interaction's, or a `ui_locales` query parameter), then the browser's
// Accept-Language, then DEFAULT_LOCALE. The request's choice travels in an
// AsyncLocalStorage, so the many places that render a page need not pass it.
import fs from 'node:fs';
import path from 'node:path';
import { AsyncLocalStorage } from 'node:async_hooks';
import { fileURLToPath } from 'node:url';

export const LOCALES = ['en', 'fr', 'ar'] as const;
export type Locale = (typeof LOCALES)[number];
const RTL: ReadonlySet<Locale> = new Set(['ar']);

export const LOCALES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../views/locales');

export type Catalogue = Record<string, string>;
export const CATALOGUES: Record<Locale, Catalogue> = Object.fromEntries(
  LOCALES.map((l) => [l, JSON.parse(fs.readFileSync(path.join(LOCALES_DIR, `${l}.json`), 'utf8')) as Catalogue]),
) as Record<Locale, Catalogue>;

export const isLocale = (v: unknown): v is Locale => (LOCALES as readonly unknown[]).includes(v);

/** the first supported language of a list of BCP 47 tags (fr-CA counts as fr) */
function firstSupported(tags: string[]): Locale | undefined {
  for (const tag of tags) {
    const base = tag.trim().toLowerCase().split(/[-_]/)[0];
    if (isLocale(base)) return base;
  }
  return undefined;
}

/** Accept-Language's tags, by quality (q=0 excluded), in order for equal qualities */
function byQuality(header: string): string[] {
  return header.split(',').map((part, i) => {
    const [tag, ...params] = part.trim().split(';');
    const q = Number(/^\s*q=([\d.]+)\s*$/.exec(params.find((p) => /^\s*q=/.test(p)) ?? '')?.[1] ?? 1);
    return { tag: tag.trim(), q: Number.isFinite(q) ? q : 0, i };
  }).filter((x) => x.tag && x.tag !== '*' && x.q > 0).sort((a, b) => b.q - a.q || a.i - b.i).map((x) => x.tag);
}

export function pickLocale(opts: { uiLocales?: string; acceptLanguage?: string; fallback: Locale }): Locale {
  return (opts.uiLocales ? firstSupported(opts.uiLocales.split(/\s+/).slice(0, 10)) : undefined)
    ?? (opts.acceptLanguage ? firstSupported(byQuality(opts.acceptLanguage.slice(0, 500)).slice(0, 20)) : undefined)
    ?? opts.fallback;
}

// ---- the request's language ----

interface RequestLanguage { uiLocales?: string; acceptLanguage?: string }
const requests = new AsyncLocalStorage<RequestLanguage>();

/** runs the rest of the request with its language sources (app.ts, first middleware) */
export function withRequestLanguage<T>(sources: RequestLanguage, fn: () => T): T {
  return requests.run({ ...sources }, fn);
}

/** the authorization request's ui_locales, once the interaction is known (src/interactions/current.ts) */
export function useUiLocales(uiLocales: unknown): void {
  const r = requests.getStore();
  if (r && typeof uiLocales === 'string' && uiLocales !== '') r.uiLocales = uiLocales;
}

export function requestLocale(fallback: Locale): Locale {
  const r = requests.getStore();
  return pickLocale({ uiLocales: r?.uiLocales, acceptLanguage: r?.acceptLanguage, fallback });
}

// ---- lookups ----

type Params = Record<string, unknown>;

/**
 * keys with placeholders, as patterns that recognise sentences made from
 * them; the one with the most fixed text wins ("Linked {a}, last used {b}"
 * before "Linked {a}")
 */
const PATTERNS: Array<{ key: string; re: RegExp; names: string[] }> = Object.keys(CATALOGUES.en).filter((k) => /\{\w+\}/.test(k))
  .sort((a, b) => b.replace(/\{\w+\}/g, '').length - a.replace(/\{\w+\}/g, '').length).map((key) => {
  const names: string[] = [];
  const source = key.split(/(\{\w+\})/).map((part) => {
    const m = /^\{(\w+)\}$/.exec(part);
    if (!m) return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    names.push(m[1]);
    return '(.+?)';
  }).join('');
  return { key, re: new RegExp(`^${source}$`, 's'), names };
});

const missListeners = new Set<(text: string, locale: Locale) => void>();
/** called with every text a page asked to translate that no catalogue has (tests use it: no page may have one) */
export function onMissingTranslation(fn: (text: string, locale: Locale) => void): () => void {
  missListeners.add(fn);
  return () => missListeners.delete(fn);
}

const fill = (template: string, params: Params | undefined, each: (v: unknown) => string = String) =>
  template.replace(/\{(\w+)\}/g, (whole, name: string) => (params && Object.hasOwn(params, name) ? each(params[name]) : whole));

/** the catalogue key and values of a text: itself, or the pattern it was made from */
export function findKey(text: string): { key: string; params?: Params } | undefined {
  if (Object.hasOwn(CATALOGUES.en, text)) return { key: text };
  for (const p of PATTERNS) {
    const m = p.re.exec(text);
    if (m) return { key: p.key, params: Object.fromEntries(p.names.map((n, i) => [n, m[i + 1]])) };
  }
  return undefined;
}

export function translate(locale: Locale, text: string, params?: Params): string {
  const found = params ? (Object.hasOwn(CATALOGUES.en, text) ? { key: text } : undefined) : findKey(text);
  if (!found) {
    for (const fn of missListeners) fn(text, locale);
    return fill(text, params);
  }
  return fill(CATALOGUES[locale][found.key] ?? CATALOGUES.en[found.key], params ?? found.params);
}

/** as ejs escapes <%= %> */
const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&#34;', "'": '&#39;' };
const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ENTITIES[c]);

/** markup a translated sentence may hold around a value: th('Signed in as {who}', { who: strong(name) }) */
export interface Html { html: string }
const tag = (name: string, cls?: string) => (v: unknown): Html => ({ html: `<${name}${cls ? ` class="${cls}"` : ''}>${escapeHtml(String(v))}</${name}>` });

/** what every template gets: t (text), th (HTML with values in markup), the language and its direction */
export function pageHelpers(locale: Locale) {
  return {
    lang: locale,
    dir: RTL.has(locale) ? 'rtl' : 'ltr',
    /** a translated text, for <%= %> (escaped there) */
    t: (text: unknown, params?: Params) => (typeof text === 'string' && text !== '' ? translate(locale, text, params) : ''),
    /** a name (an application's): translated when the catalogue has it (our own account page's "Your account"), else as it is */
    name: (text: unknown) => (typeof text === 'string' && Object.hasOwn(CATALOGUES.en, text) ? translate(locale, text) : String(text ?? '')),
    /** a translated text as HTML, for <%- %>: the text is escaped, values too unless they are markup made by strong/code/span */
    th: (text: string, params: Params = {}) => fill(escapeHtml(translate(locale, text)), params, (v) => (typeof v === 'object' && v !== null && 'html' in v ? (v as Html).html : escapeHtml(String(v)))),
    strong: tag('strong'),
    code: tag('code'),
    span: (cls: string, v: unknown) => tag('span', cls)(v),
  };
}

export type PageHelpers = ReturnType<typeof pageHelpers>;
