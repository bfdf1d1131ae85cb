import { describe, expect, it } from 'vitest';
import { parseConfig } from './config';
import type { ServerConfig } from './config';

const parse = (argv: string[]): ServerConfig => {
  const config = parseConfig(argv, {});
  if (config === 'help') throw new Error('help');
  return config;
};

describe('snapshot and catch-up flags', () => {
  it('default to 4 MiB pages, 4 snapshots at once and a 30 s page ack timeout', () => {
    expect(parse([]).catchUp).toEqual({
      pageBytes: 4 * 1024 * 1024,
      snapshotPageBytes: 4 * 1024 * 1024,
      maxConcurrentSnapshots: 4,
      pageAckTimeoutMs: 30_000,
    });
  });

  it('take what the flags say', () => {
    const argv = ['--catch-up-page-bytes', '1000', '--snapshot-page-bytes', '2000'];
    argv.push('--max-concurrent-snapshots', '1', '--page-ack-timeout-ms', '500');
    expect(parse(argv).catchUp).toEqual({
      pageBytes: 1000,
      snapshotPageBytes: 2000,
      maxConcurrentSnapshots: 1,
      pageAckTimeoutMs: 500,
    });
  });

  it('refuse 0 and non-integers, naming the flag', () => {
    expect(() => parse(['--max-concurrent-snapshots', '0'])).toThrow(/--max-concurrent-snapshots must be at least 1/);
    expect(() => parse(['--page-ack-timeout-ms', '0'])).toThrow(/--page-ack-timeout-ms must be at least 1/);
    expect(() => parse(['--catch-up-page-bytes', '1.5'])).toThrow(
      /--catch-up-page-bytes must be a non-negative integer/,
    );
  });
});
