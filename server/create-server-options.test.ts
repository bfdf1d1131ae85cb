import { describe, expect, it } from 'vitest';
import { storeSchema } from '../shared/apps/store';
import { DEFAULT_SESSION_LIMITS, serverConfigOf } from './index';
import { parseConfig } from './config';

describe('createServer options', () => {
  it('default the session limits to the CLI defaults', () => {
    const cli = parseConfig([], {});
    if (cli === 'help') throw new Error('help');
    const config = serverConfigOf({ schema: storeSchema, dataDir: '/tmp/unused' });
    expect(config.catchUp).toEqual(cli.catchUp);
    expect(config.maxSessionBufferBytes).toBe(DEFAULT_SESSION_LIMITS.maxBufferBytes);
    expect(config.floodLimits).toEqual(cli.floodLimits);
  });

  it('take each session limit as the matching flag does', () => {
    const cli = parseConfig(
      [
        '--max-session-buffer-bytes',
        '1000',
        '--catch-up-page-bytes',
        '2000',
        '--snapshot-page-bytes',
        '3000',
        '--max-concurrent-snapshots',
        '2',
        '--page-ack-timeout-ms',
        '500',
      ],
      {},
    );
    if (cli === 'help') throw new Error('help');
    const config = serverConfigOf({
      schema: storeSchema,
      dataDir: '/tmp/unused',
      sessions: {
        maxBufferBytes: 1000,
        catchUpPageBytes: 2000,
        snapshotPageBytes: 3000,
        maxConcurrentSnapshots: 2,
        pageAckTimeoutMs: 500,
      },
    });
    expect(config.catchUp).toEqual(cli.catchUp);
    expect(config.maxSessionBufferBytes).toBe(cli.maxSessionBufferBytes);
  });
});
