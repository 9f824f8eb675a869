// Every form and same-site link of a page, as a browser would submit them:
// inputs (hidden, text, password, ticked checkboxes and radios), the named
// submit buttons, selects (their selected or first option) and textareas, in
// document order and with repeated names kept (the consent page's "offered" /
// "optional" pairs). The conformance tests use it to find the consent form,
// the fuzzer to reach every form a page serves. Forms are not nested in our
// views, so a non-greedy match per <form> is exact.
export interface PageForm {
  id?: string;
  method: 'GET' | 'POST';
  action: string;
  /** [name, value] in document order; repeated names kept */
  fields: Array<[string, string]>;
  /** named submit buttons: a browser sends the one that was clicked */
  buttons: Array<[string, string]>;
}

export function decodeHtml(s: string): string {
  return s.replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d)))
    .replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

const attr = (tag: string, name: string): string | undefined => {
  const m = new RegExp(`\\s${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)')`, 'i').exec(tag);
  return m ? decodeHtml(m[1] ?? m[2]) : undefined;
};
const has = (tag: string, name: string) => new RegExp(`\\s${name}(?:[\\s>=/]|$)`, 'i').test(tag);

export function pageForms(html: string): PageForm[] {
  const out: PageForm[] = [];
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const [, open, inner] = m;
    const fields: Array<[string, string]> = [];
    const buttons: Array<[string, string]> = [];
    for (const el of inner.matchAll(/<(input|button|select|textarea)\b([^>]*)>([\s\S]*?(?=<\/select>|<\/textarea>))?/gi)) {
      const kind = el[1].toLowerCase();
      const tag = ` ${el[2]}`;
      const name = attr(tag, 'name');
      if (!name || has(tag, 'disabled')) continue;
      if (kind === 'button') {
        if ((attr(tag, 'type') ?? 'submit').toLowerCase() === 'submit') buttons.push([name, attr(tag, 'value') ?? '']);
      } else if (kind === 'select') {
        const options = [...(el[3] ?? '').matchAll(/<option\b([^>]*)>([^<]*)/gi)];
        const chosen = options.find((o) => has(` ${o[1]}`, 'selected')) ?? options[0];
        if (chosen) fields.push([name, attr(` ${chosen[1]}`, 'value') ?? decodeHtml(chosen[2].trim())]);
      } else if (kind === 'textarea') {
        fields.push([name, decodeHtml(el[3] ?? '')]);
      } else {
        const type = (attr(tag, 'type') ?? 'text').toLowerCase();
        if (type === 'submit') buttons.push([name, attr(tag, 'value') ?? '']);
        else if ((type === 'checkbox' || type === 'radio') && !has(tag, 'checked')) continue;
        else if (type !== 'button' && type !== 'reset' && type !== 'file' && type !== 'image') fields.push([name, attr(tag, 'value') ?? (type === 'checkbox' ? 'on' : '')]);
      }
    }
    out.push({
      id: attr(` ${open}`, 'id'),
      method: (attr(` ${open}`, 'method') ?? 'get').toUpperCase() === 'POST' ? 'POST' : 'GET',
      action: attr(` ${open}`, 'action') ?? '',
      fields, buttons,
    });
  }
  return out;
}

/** same-site links (href starting with one "/"), decoded */
export function pageLinks(html: string): string[] {
  return [...html.matchAll(/<a\b[^>]*\shref="(\/(?!\/)[^"]*)"/gi)].map((m) => decodeHtml(m[1]));
}

/** the form whose action ends with `suffix` (e.g. "/consent"), or undefined */
export function formEndingWith(html: string, suffix: string): PageForm | undefined {
  return pageForms(html).find((f) => f.method === 'POST' && f.action.split('?')[0].endsWith(suffix));
}

/** the fields and the first named button (the default submit), as a form body */
export function formBody(form: PageForm): URLSearchParams {
  return new URLSearchParams([...form.fields, ...form.buttons.slice(0, 1)]);
}
