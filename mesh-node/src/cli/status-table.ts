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
  const e = s.election
  const master =
    e.master === null
      ? `MASTER: none known (term ${e.term})`
      : `MASTER: ${e.master} (term ${e.term}${e.vip.address === null ? '' : `, VIP ${e.vip.address}`})`
  const holders = e.vipHolders.length > 1 ? ` — WARNING: ${e.vipHolders.join(', ')} all hold the VIP` : ''
  const rows: string[][] = [
    ['ID', 'STATE', 'ROLE', 'PRIORITY', 'FAILING CHECKS', 'INCARNATION', 'LAST HEARD', 'API', 'PEER ID'],
  ]
  for (const m of s.members) {
    const el = m.election
    rows.push([
      m.self ? `${m.id} *` : m.id,
      m.state,
      m.maintenance !== null
        ? 'MAINTENANCE'
        : el === null
          ? '-'
          : el.holder
            ? 'MASTER'
            : el.eligible
              ? 'BACKUP'
              : 'FAULT',
      el === null || el.effectivePriority === m.priority
        ? String(m.priority)
        : `${el.effectivePriority} (${m.priority})`,
      el === null || el.failingChecks.length === 0 ? '-' : el.failingChecks.join(','),
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
  const listeners =
    s.listeners.length === 0
      ? ''
      : `\n${table([
          [
            'LISTENER',
            'BIND',
            'ROLE',
            'BALANCE',
            'ACTIVE',
            'TOTAL',
            'QUEUED',
            'REFUSED',
            'QUEUE TIMEOUTS',
            'CUT',
            'POLICY REFUSED',
          ],
          ...s.listeners.map((l) => [
            l.name,
            l.bind,
            l.role,
            l.balance,
            String(l.active),
            String(l.total),
            String(l.queued),
            String(l.refused),
            String(l.queueTimeouts),
            String(l.cut),
            l.policy === undefined ? '-' : String(Object.values(l.policy.refused).reduce((a, b) => a + b, 0)),
          ]),
        ])}\n`
  const maintenance = s.members
    .filter((m) => m.maintenance !== null)
    .map(
      (m) =>
        `\n${m.id} in maintenance since ${m.maintenance?.since}${m.maintenance?.reason == null ? '' : `: ${m.maintenance.reason}`}`,
    )
    .join('')
  const removed =
    s.removed.length === 0
      ? ''
      : `\nremoved by an operator: ${s.removed.map((r) => `${r.id} (incarnation ${r.incarnation}, ${r.removedAt})`).join(', ')}`
  return `${head}\n${master}${holders}\n\n${table(rows)}${maintenance}${removed}\n${listeners}\n${foot}\n`
}
