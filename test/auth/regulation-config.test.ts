import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env, '/srv/archway');
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('the regulation settings', () => {
  it('default to the numbers docs/SECURITY.md explains', () => {
    expect(loadConfig({}, '/srv/archway').auth.regulation).toEqual({
      ipMaxFailures: 20,
      ipWindowMinutes: 15,
      ipBlockMinutes: 15,
      ipBlockMaxMinutes: 1440,
      userMaxFailures: 5,
      userWindowMinutes: 15,
      userBlockSeconds: 60,
      userBlockMaxMinutes: 15,
      escalationHours: 24,
    });
  });

  it('name every bad value at once', () => {
    expect(
      problemsOf({
        ARCHWAY_SIGNIN_IP_MAX_FAILURES: '0',
        ARCHWAY_SIGNIN_USER_MAX_FAILURES: 'five',
        ARCHWAY_SIGNIN_USER_BLOCK_SECONDS: '-1',
        ARCHWAY_SIGNIN_ESCALATION_HOURS: '1.5',
      }),
    ).toEqual([
      'ARCHWAY_SIGNIN_IP_MAX_FAILURES must be a whole number from 3 to 10000 (got "0").',
      'ARCHWAY_SIGNIN_USER_MAX_FAILURES must be a whole number from 3 to 1000 (got "five").',
      'ARCHWAY_SIGNIN_USER_BLOCK_SECONDS must be a whole number from 1 to 3600 (got "-1").',
      'ARCHWAY_SIGNIN_ESCALATION_HOURS must be a whole number from 1 to 720 (got "1.5").',
    ]);
  });

  it('refuse a longest block shorter than the first one', () => {
    expect(
      problemsOf({
        ARCHWAY_SIGNIN_IP_BLOCK_MINUTES: '60',
        ARCHWAY_SIGNIN_IP_BLOCK_MAX_MINUTES: '30',
        ARCHWAY_SIGNIN_USER_BLOCK_SECONDS: '600',
        ARCHWAY_SIGNIN_USER_BLOCK_MAX_MINUTES: '5',
      }),
    ).toEqual([
      'ARCHWAY_SIGNIN_IP_BLOCK_MAX_MINUTES must be at least ARCHWAY_SIGNIN_IP_BLOCK_MINUTES.',
      'ARCHWAY_SIGNIN_USER_BLOCK_MAX_MINUTES must be at least ARCHWAY_SIGNIN_USER_BLOCK_SECONDS.',
    ]);
  });
});
