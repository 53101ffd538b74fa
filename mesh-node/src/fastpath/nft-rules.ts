import { createHash } from 'node:crypto'

/** A backend a kernel listener forwards to. */
export interface KernelTarget {
  readonly id: string
  readonly host: string
  readonly port: number
  readonly weight: number
}

/** One listener on the kernel path: where clients connect, and where new connections go now. */
export interface KernelRoute {
  readonly listener: string
  /** the listener's address as bound (`0.0.0.0` = every local address) */
  readonly host: string
  readonly port: number
  readonly balance: 'roundrobin' | 'source' | 'first' | 'random'
  /** null: the route is uncertain, new connections reach pgmesh's own listener (queue, replay) */
  readonly targets: readonly KernelTarget[] | null
}

/** The most slots one weighted map may have (weights are scaled down to fit). */
export const MAX_SLOTS = 64

/** `pgmesh_fast_1a2b3c4d`: one table a node (two nodes on one host in tests do not share it). */
export function fastPathTable(node: string): string {
  return `pgmesh_fast_${createHash('sha256').update(node).digest('hex').slice(0, 8)}`
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/

function ipv4(host: string): string {
  const m = IPV4.exec(host)
  if (m === null || m.slice(1).some((o) => Number(o) > 255)) throw new Error(`not an IPv4 address: ${host}`)
  return host
}

/**
 * The weighted slots of a map: each target appears about `weight / total × slots` times, at
 * least once when its weight is above 0, interleaved so `numgen inc` alternates.
 */
export function weightedSlots(targets: readonly KernelTarget[]): KernelTarget[] {
  const live = targets.filter((t) => t.weight > 0)
  const pool = live.length > 0 ? live : targets.slice(0, 1)
  const total = pool.reduce((s, t) => s + Math.max(t.weight, 1), 0)
  const scale = total > MAX_SLOTS ? MAX_SLOTS / total : 1
  const counts = pool.map((t) => Math.max(1, Math.round(Math.max(t.weight, 1) * scale)))
  const slots: KernelTarget[] = []
  for (let round = 0; slots.length < counts.reduce((a, b) => a + b, 0); round++) {
    pool.forEach((t, i) => {
      if (round < counts[i]!) slots.push(t)
    })
  }
  return slots
}

function destination(r: KernelRoute): string {
  const targets = r.targets ?? []
  if (targets.length === 0) throw new Error('a kernel route without targets')
  if (r.balance === 'first' || targets.length === 1) {
    const t = targets[0]!
    return `dnat ip to ${ipv4(t.host)}:${t.port}`
  }
  const slots = weightedSlots(targets)
  const map = slots.map((t, i) => `${i} : ${ipv4(t.host)} . ${t.port}`).join(', ')
  const pick =
    r.balance === 'source'
      ? `jhash ip saddr mod ${slots.length}`
      : r.balance === 'random'
        ? `numgen random mod ${slots.length}`
        : `numgen inc mod ${slots.length}`
  return `dnat ip to ${pick} map { ${map} }`
}

function match(r: KernelRoute): string {
  const addr = r.host === '0.0.0.0' ? 'fib daddr type local' : `ip daddr ${ipv4(r.host)}`
  return `${addr} tcp dport ${r.port}`
}

/** The named counter of a listener's new connections: an nft identifier whatever the listener's name. */
export function counterName(listener: string): string {
  return `new_${createHash('sha256').update(listener).digest('hex').slice(0, 12)}`
}

/**
 * One nft batch (atomic) that brings the node's fast-path table in line with the routes: for each
 * certain route a DNAT rule in `output` (clients on this host) and `prerouting` (clients arriving
 * on the VIP); flows that arrived from outside are masqueraded so a backend's replies come back
 * through this host. An uncertain route has no rule: its connections reach pgmesh's own listener on
 * the same address. The chains are flushed and refilled, not the table replaced: each listener's
 * named counter of new connections keeps counting across updates (monotonic, as metrics need).
 * `dropCounters` are the counters of listeners no longer routed.
 */
export function fastPathScript(
  table: string,
  routes: readonly KernelRoute[],
  dropCounters: readonly string[] = [],
): string {
  const lines = [`add table ip ${table}`]
  const chains = [
    'output { type nat hook output priority -100; policy accept; }',
    'prerouting { type nat hook prerouting priority dstnat; policy accept; }',
    'postrouting { type nat hook postrouting priority srcnat; policy accept; }',
    // a DNAT to a local address is delivered, not forwarded: its source NAT happens on input
    'input { type nat hook input priority 100; policy accept; }',
  ]
  for (const c of chains) lines.push(`add chain ip ${table} ${c}`)
  for (const c of chains) lines.push(`flush chain ip ${table} ${c.slice(0, c.indexOf(' '))}`)
  for (const name of dropCounters) {
    // add-then-delete: no failure when it is already gone
    lines.push(`add counter ip ${table} ${name}`, `delete counter ip ${table} ${name}`)
  }
  for (const r of routes) lines.push(`add counter ip ${table} ${counterName(r.listener)}`)
  for (const r of routes) {
    if (r.targets === null || r.targets.length === 0) continue
    const comment = `comment "${r.listener.replace(/[^A-Za-z0-9_.-]/g, '_')}"`
    const counter = `counter name ${counterName(r.listener)}`
    lines.push(`add rule ip ${table} output ${match(r)} ${counter} ${destination(r)} ${comment}`)
    lines.push(
      `add rule ip ${table} prerouting ${match(r)} ct mark set 0x70676d ${counter} ${destination(r)} ${comment}`,
    )
  }
  // backends on other hosts see this host as the client; a backend on this host's loopback too
  lines.push(`add rule ip ${table} postrouting ct mark 0x70676d masquerade`)
  lines.push(`add rule ip ${table} input ct mark 0x70676d ip daddr 127.0.0.0/8 snat ip to 127.0.0.1`)
  return lines.join('\n')
}

export function fastPathRemoveScript(table: string): string {
  return `add table ip ${table}\ndelete table ip ${table}`
}

/** `conntrack -D` arguments for the flows of a listener to one backend (the kernel path's cut). */
export function conntrackCutArgs(
  r: Pick<KernelRoute, 'host' | 'port'>,
  target: Pick<KernelTarget, 'host' | 'port'>,
): string[] {
  return [
    '-D',
    '-p',
    'tcp',
    ...(r.host === '0.0.0.0' ? [] : ['--orig-dst', ipv4(r.host)]),
    '--orig-port-dst',
    String(r.port),
    '--reply-src',
    ipv4(target.host),
    '--reply-port-src',
    String(target.port),
  ]
}

/** The named counters' packet counts (one packet per new connection), from `nft -j list counters`. */
export function parseCounters(json: string): Map<string, number> {
  const out = new Map<string, number>()
  let doc: unknown
  try {
    doc = JSON.parse(json)
  } catch {
    return out
  }
  const items = (doc as { nftables?: unknown }).nftables
  if (!Array.isArray(items)) return out
  for (const item of items) {
    const c = (item as { counter?: { name?: unknown; packets?: unknown } } | null)?.counter
    if (typeof c?.name === 'string' && typeof c.packets === 'number') out.set(c.name, c.packets)
  }
  return out
}
