import type { ClusterStatus } from '@pgmesh/protocol'

function ago(ms: number | null): string {
  if (ms === null) return '-'
  if (ms < 1000) return `${ms}ms`
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)}s`
  return `${Math.round(ms / 60_000)}m`
}

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}

/** The cluster view as an operator reads it in a terminal. */
export function formatStatus(s: ClusterStatus): string {
  const c = s.counts
  const head = `cluster ${s.cluster} — seen from ${s.self} (pgmesh ${s.version}) — ${c.alive} alive, ${c.suspect} suspect, ${c.dead} dead, ${c.left} left`
  const rows: string[][] = [['ID', 'STATE', 'PRIORITY', 'INCARNATION', 'LAST HEARD', 'API', 'PEER ID']]
  for (const m of s.members) {
    rows.push([
      m.self ? `${m.id} *` : m.id,
      m.state,
      String(m.priority),
      String(m.incarnation),
      m.self ? 'self' : ago(m.lastHeardAgoMs),
      m.api ?? '-',
      m.peerId,
    ])
  }
  const dropped = Object.entries(s.gossip.dropped)
  const foot = `gossip: ${s.gossip.connectedPeers} connected peer(s), ${s.gossip.topicPeers} exchanging gossip, ${s.gossip.messagesIn} in, ${s.gossip.messagesOut} out${
    dropped.length > 0 ? `, dropped ${dropped.map(([k, v]) => `${k}=${v}`).join(' ')}` : ''
  }`
  return `${head}\n\n${table(rows)}\n\n${foot}\n`
}
