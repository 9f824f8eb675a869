// Server-rendered pages: views/<name>.ejs rendered into views/layout.ejs.
// ejs escapes every <%= %>; templates are compiled once and cached.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ejs from 'ejs';

export const VIEWS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../views');

export interface Views {
  page(name: string, locals: Record<string, unknown>): Promise<string>;
}

export function createViews(opts: { productName?: string } = {}): Views {
  const render = (name: string, locals: Record<string, unknown>) =>
    ejs.renderFile(path.join(VIEWS_DIR, `${name}.ejs`), locals, { cache: true, async: false }) as Promise<string>;
  return {
    async page(name, locals) {
      const body = await render(name, { productName: opts.productName, ...locals });
      return render('layout', { productName: opts.productName, title: locals.title ?? '', body });
    },
  };
}
