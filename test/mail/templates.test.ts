import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { VIEWS_DIR } from '../../src/paths.js';

const EMAILS_DIR = path.join(VIEWS_DIR, 'emails');

describe('the email templates in views/emails', () => {
  it('come in pairs, a text part that starts with a one-line subject and an HTML part', async () => {
    const files = (await readdir(EMAILS_DIR)).filter((name) => !name.startsWith('layout.'));
    const names = [...new Set(files.map((file) => file.replace(/\.(txt|html)\.eta$/, '')))].sort();
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) {
      expect(name).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*$/);
      expect(files).toContain(`${name}.txt.eta`);
      expect(files).toContain(`${name}.html.eta`);
      const text = await readFile(path.join(EMAILS_DIR, `${name}.txt.eta`), 'utf8');
      expect({ name, start: /^Subject: \S[^\n]*\n\n/.test(text) }).toEqual({ name, start: true });
    }
    expect(files.filter((file) => !/\.(txt|html)\.eta$/.test(file))).toEqual([]);
  });
});
