// docs/events.md against the code: the event types the IdP can record
// (EVENT_TYPES, which every emit/append/commit is typed by) are exactly the
// ones the "Types" table lists, and each has a row under "An example of each"
// whose data is JSON without personal data.
import fs from 'node:fs';
import { expect } from 'chai';
import { EVENT_TYPES } from '../src/events/index.ts';
import { redact } from '../src/events/types.ts';

const doc = fs.readFileSync(new URL('../docs/events.md', import.meta.url), 'utf8');
const section = (heading: string) => {
  const start = doc.indexOf(`\n## ${heading}\n`);
  expect(start, heading).to.be.above(-1);
  const end = doc.indexOf('\n## ', start + 4);
  return doc.slice(start, end < 0 ? undefined : end);
};
/** the first cell of each table row: one or more `type` names */
const rows = (text: string) => text.split('\n').filter((l) => /^\| `/.test(l)).map((l) => l.split(' | '));

describe('docs/events.md', () => {
  it('the Types table lists exactly the types the code can record', () => {
    const listed = rows(section('Types')).flatMap((cells) => [...cells[0].matchAll(/`([a-z_.]+)`/g)].map((m) => m[1]));
    expect([...new Set(listed)].sort()).to.deep.equal([...EVENT_TYPES].sort());
  });

  it('every type has an example, its data JSON without personal data', () => {
    const examples = new Map(rows(section('An example of each')).map((cells) => [/`([a-z_.]+)`/.exec(cells[0])![1], cells[2]]));
    expect([...examples.keys()].sort()).to.deep.equal([...EVENT_TYPES].sort());
    for (const [type, cell] of examples) {
      const data = JSON.parse(cell.replace(/^`|` \|$/g, '').replace(/\\\|/g, '|')) as Record<string, unknown>;
      expect(redact(data), type).to.deep.equal(data);
    }
  });
});
