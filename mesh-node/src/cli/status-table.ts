import type { ClusterStatus } from '@pgmesh/protocol'

/**
 * C0 and C1 control characters, DEL, and the Unicode line/paragraph separators and bidi controls:
 * a peer's string holding them could move the cursor, recolour or rewrite what the operator reads.
 */
export function isUnsafeForTerminal(code: number): boolean {
  return (
    code <= 0x1f ||
    (code >= 0x7f && code <= 0x9f) ||
    code === 0x2028 ||
    code === 0x2029 ||
    (code >= 0x202a && code <= 0x202e) ||
    (code >= 0x2066 && code <= 0x2069)
  )
}

/** A string as it may reach a terminal: every unsafe character shown as `\xNN` / `\uNNNN`. */
export function sanitizeForTerminal(s: string): string {
  let out = ''
  for (const ch of s) {
    const code = ch.codePointAt(0)!
    if (!isUnsafeForTerminal(code)) out += ch
    else out += code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16)}`
  }
  return out
}

/**
 * JSON text for a terminal: JSON.stringify escapes C0 characters but leaves C1 ones and the bidi
 * controls raw; those become `\uNNNN` escapes too (the same JSON value).
 */
export function jsonForTerminal(value: unknown): string {
  let out = ''
  for (const ch of JSON.stringify(value, null, 2)) {
    const code = ch.codePointAt(0)!
    out += ch !== '\n' && isUnsafeForTerminal(code) ? `\\u${code.toString(16).padStart(4, '0')}` : ch
  }
  return out
}

/** Every string in a JSON-shaped value passed through `sanitizeForTerminal`, keys included. */
export function sanitizeDeep<T>(value: T): T {
  if (typeof value === 'string') return sanitizeForTerminal(value) as T
  if (Array.isArray(value)) return value.map((v: unknown) => sanitizeDeep(v)) as T
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [sanitizeForTerminal(k), sanitizeDeep(v)]),
    ) as T
  }
  return value
}

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

/**
 * The cluster view as an operator reads it in a terminal. Most strings come from peers (ids,
 * addresses, maintenance reasons, check names): all are sanitised first.
 */
export function formatStatus(status: ClusterStatus): string {
  const s = sanitizeDeep(status)
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
