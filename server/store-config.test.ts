import { describe, expect, it } from 'vitest';
import { storeSchema } from '../shared/apps/store';
import { TidelineError } from '../shared/errors';
import { parseConfig } from './config';
import type { ServerConfig } from './config';
import { serverConfigOf } from './index';
import { defaultNodeId, redactUrl } from './store-spec';

/** `--store`, `--pg-schema`, `--node-id` and what a node on PostgreSQL refuses or requires. */

const SECRETS = { TIDELINE_SECRET: 'a-secret-of-16-chars-or-more', TIDELINE_ADMIN_TOKEN: 'an-admin-token-of-16-chars' };
const PG = 'postgres://tideline:pw@127.0.0.1:5432/shop';

const parse = (argv: string[], env: NodeJS.ProcessEnv = SECRETS): ServerConfig => {
  const config = parseConfig(argv, env);
  if (config === 'help') throw new Error('help');
  return config;
};
const refusal = (argv: string[], env: NodeJS.ProcessEnv = SECRETS): string => {
  try {
    parse(argv, env);
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  throw new Error(`accepted: ${argv.join(' ')}`);
};

describe('--store, --pg-schema, --node-id', () => {
  it('default to SQLite in --data, with no node id given', () => {
    const config = parse([], {});
    expect(config.store).toEqual({ kind: 'sqlite' });
    expect(config.nodeId).toBeNull();
  });

  it('select PostgreSQL for a postgres:// or postgresql:// URL, in schema tideline unless --pg-schema names one', () => {
    expect(parse(['--store', PG]).store).toEqual({ kind: 'postgres', url: PG, pgSchema: 'tideline' });
    const other = parse(['--store', 'postgresql://127.0.0.1/shop', '--pg-schema', 'shop_eu']);
    expect(other.store).toEqual({ kind: 'postgres', url: 'postgresql://127.0.0.1/shop', pgSchema: 'shop_eu' });
  });

  it('take TIDELINE_STORE, TIDELINE_PG_SCHEMA and TIDELINE_NODE_ID when the flags are not given', () => {
    const env = { ...SECRETS, TIDELINE_STORE: PG, TIDELINE_PG_SCHEMA: 'from_env', TIDELINE_NODE_ID: 'eu-1' };
    const config = parse([], env);
    expect(config.store).toEqual({ kind: 'postgres', url: PG, pgSchema: 'from_env' });
    expect(config.nodeId).toBe('eu-1');
    expect(parse(['--pg-schema', 'from_flag', '--node-id', 'eu-2'], env)).toMatchObject({
      store: { pgSchema: 'from_flag' },
      nodeId: 'eu-2',
    });
  });

  it('refuse another kind of URL, a schema name that is not a plain identifier, and --pg-schema without PostgreSQL', () => {
    expect(refusal(['--store', 'mysql://127.0.0.1/shop'])).toMatch(/--store must be a postgres/);
    expect(refusal(['--store', './data/tideline.db'])).toMatch(/--store must be a postgres/);
    for (const bad of ['Shop', 'shop-eu', '1shop', 'a;drop', 'x'.repeat(64)]) {
      expect(refusal(['--store', PG, '--pg-schema', bad])).toMatch(/not a usable PostgreSQL schema name/);
    }
    expect(refusal(['--pg-schema', 'shop'])).toMatch(/--pg-schema applies only with --store postgres/);
  });

  it('refuse a node id that is not a plain name', () => {
    expect(refusal(['--node-id', 'a b'])).toMatch(/not a usable node id/);
    expect(refusal(['--node-id', 'x'.repeat(129)])).toMatch(/not a usable node id/);
    expect(parse(['--node-id', 'eu-west.1:a_b']).nodeId).toBe('eu-west.1:a_b');
  });

  it('refuse the replica and failover flags on PostgreSQL, naming them', () => {
    expect(refusal(['--store', PG, '--primary', 'http://127.0.0.1:3000'])).toMatch(
      /^--primary cannot be used with a PostgreSQL store/,
    );
    expect(refusal(['--store', PG, '--role', 'replica', '--primary', 'http://a'])).toMatch(
      /^--role replica, --primary cannot be used/,
    );
    expect(refusal(['--store', PG, '--peers', 'http://a'])).toMatch(/--peers cannot be used/);
    expect(refusal(['--store', PG, '--min-sync-replicas', '1'])).toMatch(/--min-sync-replicas cannot be used/);
    expect(refusal(['--store', PG, '--restore', 'x.db', '--primary', 'http://a'])).toMatch(/--restore cannot/);
    expect(refusal(['--store', PG, '--data', './data'])).toMatch(/--data: a node on a PostgreSQL store keeps no files/);
  });

  it('require the token secret (or a JWKS URL) and the admin token on PostgreSQL, naming the variables', () => {
    expect(refusal(['--store', PG], {})).toMatch(
      /needs TIDELINE_SECRET \(or --auth-jwks-url\) and TIDELINE_ADMIN_TOKEN/,
    );
    expect(refusal(['--store', PG], { TIDELINE_SECRET: SECRETS.TIDELINE_SECRET })).toMatch(
      /needs TIDELINE_ADMIN_TOKEN,/,
    );
    const jwks = parse(['--store', PG, '--auth-jwks-url', 'https://id.example/jwks'], {
      TIDELINE_ADMIN_TOKEN: SECRETS.TIDELINE_ADMIN_TOKEN,
    });
    expect(jwks.store?.kind).toBe('postgres');
    // SQLite makes and keeps its own in the data directory.
    expect(parse([], {}).secret).toBeNull();
  });
});

describe('createServer store options', () => {
  const pgOptions = {
    schema: storeSchema,
    store: PG,
    auth: { secret: SECRETS.TIDELINE_SECRET },
    adminToken: 'x'.repeat(20),
  };
  const code = (fn: () => unknown): string => {
    try {
      fn();
    } catch (err) {
      if (err instanceof TidelineError) return `${err.code}: ${err.message}`;
      throw err;
    }
    return 'accepted';
  };

  it('give the same store and node id as the flags', () => {
    const config = serverConfigOf({ ...pgOptions, pgSchema: 'shop_eu', nodeId: 'eu-1' });
    expect(config.store).toEqual({ kind: 'postgres', url: PG, pgSchema: 'shop_eu' });
    expect(config.nodeId).toBe('eu-1');
    expect(serverConfigOf({ schema: storeSchema, dataDir: '/tmp/unused' }).store).toEqual({ kind: 'sqlite' });
  });

  it('refuse what a PostgreSQL node cannot use, and require its secrets', () => {
    expect(code(() => serverConfigOf({ ...pgOptions, replication: { primaryUrl: 'http://a' } }))).toMatch(
      /BAD_REQUEST: replication.primaryUrl cannot be used with a PostgreSQL store/,
    );
    expect(code(() => serverConfigOf({ ...pgOptions, replication: { publicUrl: 'http://lb' } }))).toBe('accepted');
    expect(code(() => serverConfigOf({ ...pgOptions, dataDir: './data' }))).toMatch(/keeps no files/);
    expect(code(() => serverConfigOf({ schema: storeSchema, store: PG }))).toMatch(
      /needs auth.secret \(or auth.jwksUrl\) and adminToken/,
    );
    expect(code(() => serverConfigOf({ schema: storeSchema }))).toMatch(/needs a dataDir/);
  });
});

describe('store spec helpers', () => {
  it('hide the password of a connection string in logs and status', () => {
    expect(redactUrl('postgres://user:s3cret@db:5432/shop')).toBe('postgres://user:***@db:5432/shop');
    expect(redactUrl('postgres://db/shop')).toBe('postgres://db/shop');
  });

  it('name a node by host and port by default', () => {
    expect(defaultNodeId(3001)).toMatch(/^[A-Za-z0-9_.-]+-3001$/);
  });
});
