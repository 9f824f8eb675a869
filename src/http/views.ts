// Server-rendered pages: views/<name>.ejs rendered into views/layout.ejs.
// ejs escapes every <%= %>; templates are compiled once and cached. Every
// page is rendered in the request's language (i18n.ts: t, th, lang, dir) and
// with the operator's branding (product name, logo, brand stylesheet).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ejs from 'ejs';
import { pageHelpers, requestLocale, type Locale } from './i18n.ts';
import { errorText } from './error-text.ts';

export const VIEWS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../views');

export interface Views {
  page(name: string, locals: Record<string, unknown>): Promise<string>;
}

/** the operator's branding (config BRAND_*): shown in every page's header */
export interface Brand {
  /** the product name in the header and the title (default: the translated "Sign in") */
  productName?: string;
  /** an https (or same-origin path) URL of the logo */
  logoUrl?: string;
  /** URL of the generated brand stylesheet (the primary colour), when there is one */
  stylesheet?: string;
}

/** the locals every template may use besides its own: translation helpers, branding, error wording */
export function viewLocals(locale: Locale, brand: Brand = {}) {
  return { ...pageHelpers(locale), brand, productName: brand.productName, errorText };
}

export function createViews(opts: { productName?: string; brand?: Brand; defaultLocale?: Locale } = {}): Views {
  const brand: Brand = { ...opts.brand, ...(opts.productName ? { productName: opts.productName } : {}) };
  const render = (name: string, locals: Record<string, unknown>) =>
    ejs.renderFile(path.join(VIEWS_DIR, `${name}.ejs`), locals, { cache: true, async: false }) as Promise<string>;
  return {
    async page(name, locals) {
      const common = viewLocals(requestLocale(opts.defaultLocale ?? 'en'), brand);
      const body = await render(name, { ...common, ...locals });
      return render('layout', { ...common, title: locals.title ?? '', wide: locals.wide === true, header: locals.header, body });
    },
  };
}
