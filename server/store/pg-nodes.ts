import type pg from 'pg';
import { TidelineError } from '../../shared/errors';

/*
 * The node registry of a PostgreSQL cluster: one row per Tideline node on
 * the schema, written by the node's heartbeat, read by `GET /admin/status`
 * on any node. Times come from PostgreSQL's clock (`now()`), never a
 * node's, so a node whose clock is off neither looks stale nor hides a dead
 * one. It is a view for operators, not a membership protocol: nothing in the
 * commit path reads it.
 */

/** A node id: an operator's name for a node (`--node-id`), or host-port. */
export const NODE_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

/** Rows unseen this long are deleted by any node's heartbeat: node ids come and go with deployments. */
export const FORGET_NODES_AFTER_MS = 24 * 3600 * 1000;

/** What a node says of itself on each heartbeat. */
export interface NodeHeartbeat {
  nodeId: string;
  /** How clients and operators reach it (its public URL, or its listen URL). */
  url: string;
  /** Client sessions it holds now. */
  sessions: number;
}

/** One node as the registry last heard of it; times in ms since the epoch, by PostgreSQL's clock. */
export interface ClusterNodeRow {
  nodeId: string;
  url: string;
  sessions: number;
  /** When this node's current process first beat. */
  startedAt: number;
  seenAt: number;
  /** now() - seenAt, by PostgreSQL's clock (no skew between nodes). */
  ageMs: number;
}

export interface HeartbeatResult {
  /**
   * True when another process wrote this node id's row since this store's
   * previous heartbeat for it: two live nodes share one `--node-id`, and the
   * registry shows only one of them.
   */
  duplicate: boolean;
}

export const nodesTableSql = (s: string): string => `
  CREATE TABLE IF NOT EXISTS ${s}.nodes (
    node_id text PRIMARY KEY,
    url text NOT NULL,
    instance text NOT NULL,
    started_at timestamptz NOT NULL,
    seen_at timestamptz NOT NULL,
    sessions int NOT NULL
  );
`;

export function checkNodeId(nodeId: string): string {
  if (!NODE_ID.test(nodeId)) {
    throw new TidelineError('BAD_REQUEST', `'${nodeId}' is not a usable node id`, {
      hint: 'use 1-128 letters, digits and _ . : -',
    });
  }
  return nodeId;
}

/**
 * Upserts the node's row (seen now, with its sessions and URL) and deletes
 * rows unseen for `forgetAfterMs`. `instance` names the writing process;
 * `first` says this is its first heartbeat for the id, which (re)starts the
 * row's `started_at`.
 */
export async function heartbeatNode(
  pool: pg.Pool,
  s: string,
  beat: NodeHeartbeat,
  instance: string,
  first: boolean,
  forgetAfterMs: number = FORGET_NODES_AFTER_MS,
): Promise<HeartbeatResult> {
  checkNodeId(beat.nodeId);
  const sessions = Math.max(0, Math.min(2_147_483_647, Math.floor(beat.sessions)));
  const url = beat.url.slice(0, 2048);
  // The previous writer of the row, read in the same statement that replaces it.
  const { rows } = await pool.query<{ previous: string | null }>(
    `WITH prev AS (SELECT instance FROM ${s}.nodes WHERE node_id = $1)
     INSERT INTO ${s}.nodes AS n (node_id, url, instance, started_at, seen_at, sessions)
       VALUES ($1, $2, $3, now(), now(), $4)
     ON CONFLICT (node_id) DO UPDATE SET url = excluded.url, instance = excluded.instance,
       seen_at = excluded.seen_at, sessions = excluded.sessions,
       started_at = CASE WHEN $5 OR n.instance <> excluded.instance THEN excluded.started_at ELSE n.started_at END
     RETURNING (SELECT instance FROM prev) AS previous`,
    [beat.nodeId, url, instance, sessions, first],
  );
  await pool.query(
    `DELETE FROM ${s}.nodes WHERE seen_at < now() - make_interval(secs => $1::double precision / 1000)`,
    [forgetAfterMs],
  );
  const previous = rows[0]?.previous ?? null;
  return { duplicate: !first && previous !== null && previous !== instance };
}

/** The nodes seen within `staleAfterMs`, by node id. */
export async function listNodes(pool: pg.Pool, s: string, staleAfterMs: number): Promise<ClusterNodeRow[]> {
  const { rows } = await pool.query<{
    node_id: string;
    url: string;
    sessions: number;
    started_at: number;
    seen_at: number;
    age_ms: number;
  }>(
    `SELECT node_id, url, sessions,
       floor(extract(epoch FROM started_at) * 1000)::bigint AS started_at,
       floor(extract(epoch FROM seen_at) * 1000)::bigint AS seen_at,
       floor(extract(epoch FROM now() - seen_at) * 1000)::bigint AS age_ms
     FROM ${s}.nodes WHERE seen_at >= now() - make_interval(secs => $1::double precision / 1000)
     ORDER BY node_id`,
    [Math.max(0, staleAfterMs)],
  );
  return rows.map((r) => ({
    nodeId: r.node_id,
    url: r.url,
    sessions: r.sessions,
    startedAt: r.started_at,
    seenAt: r.seen_at,
    ageMs: Math.max(0, r.age_ms),
  }));
}

/** Deletes the node's row if `instance` wrote it last (a node closing cleanly; never another process's row). */
export async function removeNode(pool: pg.Pool, s: string, nodeId: string, instance: string): Promise<void> {
  await pool.query(`DELETE FROM ${s}.nodes WHERE node_id = $1 AND instance = $2`, [nodeId, instance]);
}
