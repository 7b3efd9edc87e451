// The root program that is shipped carries no test seam: a caller who could set its environment still could not move its clock or its disk.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BUNDLE, makeWorld, SEAM_VARIABLES, TEST_BUNDLE } from './world.js';

const YEAR = 365 * 86400;

describe('the shipped dispatcher bundle', () => {
  it('contains neither seam variable nor the build constant that guards them, which the test bundle does contain', () => {
    const shipped = readFileSync(BUNDLE, 'utf8');
    const test = readFileSync(TEST_BUNDLE, 'utf8');
    for (const name of SEAM_VARIABLES) {
      expect(shipped).not.toContain(name);
      expect(test).toContain(name);
    }
    expect(shipped).not.toContain('__TEST_SEAMS__');
  });

  it('keeps its own clock when the environment asks for a shifted one; the test bundle is shifted', () => {
    const w = makeWorld();
    const shift = { ARCHWAY_DISPATCHER_NOW_OFFSET: String(YEAR) };
    // w.run picks the test bundle when a seam is set; the shipped one is run by path here.
    const shifted = Date.parse(w.run('ping', {}, shift).answer.result.time);
    expect(Math.abs(shifted - (Date.now() + YEAR * 1000))).toBeLessThan(60_000);
    const shipped = w.runBundle(BUNDLE, 'ping', {}, shift);
    expect(Math.abs(Date.parse(shipped.answer.result.time) - Date.now())).toBeLessThan(60_000);
  });

  it('reports the real free space when the environment pretends a full disk; the test bundle pretends', () => {
    const w = makeWorld();
    const full = { ARCHWAY_DISPATCHER_FAKE_FREE_BYTES: '1000' };
    expect(w.run('ping', {}, full).answer.result.freeBytes).toBe(1000);
    expect(w.runBundle(BUNDLE, 'ping', {}, full).answer.result.freeBytes).toBeGreaterThan(1000);
  });
});
