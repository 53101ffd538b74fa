import type { Heartbeat, MembershipTimings } from '@pgmesh/protocol'

/** Membership timings the pure-state tests step through (ms). */
export const TEST_TIMINGS: MembershipTimings = {
  heartbeatIntervalMs: 100,
  suspectTimeoutMs: 300,
  deadTimeoutMs: 1000,
  leftRetentionMs: 5000,
}

/** A valid heartbeat of `node` in cluster `c` (peer id `peer-<node>`), with `fields` over it. */
export function testHeartbeat(node: string, fields: Partial<Heartbeat> = {}): Heartbeat {
  return {
    v: 1,
    kind: 'heartbeat',
    cluster: 'c',
    node,
    peerId: `peer-${node}`,
    incarnation: 1,
    sentAt: 0,
    seq: 1,
    priority: 100,
    addrs: [],
    api: null,
    configVersion: 0,
    ...fields,
  }
}
