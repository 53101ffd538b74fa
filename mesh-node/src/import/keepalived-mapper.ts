import {
  type ElectionConfigInput,
  err,
  isIPv4,
  isIPv6,
  type NotifyScripts,
  ok,
  pgmeshError,
  type Result,
  VipAddressSchema,
} from '@pgmesh/protocol'
import { pgmeshName } from './haproxy-mapper.js'
import type { KeepalivedNode } from './keepalived-parser.js'
import type { ImportNote } from './report.js'
import { intIn, keepalivedSecondsMs } from './units.js'

/** The gossip port pgmesh uses when the operator does not choose one (the node section's default). */
export const DEFAULT_GOSSIP_PORT = 7946

/** The tracked checks an import writes: Keepalived scripts, or a TCP check of pgmesh itself. */
export type CheckInput = {
  name: string
  intervalMs: number
  timeoutMs: number
  rise: number
  fall: number
  weight: number
} & ({ kind: 'exec'; command: string[] } | { kind: 'tcp'; host: string; port: number })

export interface KeepalivedImport {
  /** `global_defs { router_id }`, a node id candidate */
  readonly routerId: string | null
  readonly priority: number | null
  readonly interface: string | null
  readonly join: string[]
  readonly advertise: string | null
  readonly vipAddress: string | null
  readonly notify: Partial<Omit<NotifyScripts, 'timeoutMs'>>
  readonly garpCount: number | null
  readonly election: ElectionConfigInput
  readonly checks: CheckInput[]
  readonly notes: ImportNote[]
}

export interface KeepalivedMapOptions {
  /**
   * A pgmesh listener a check of HAProxy's process turns into a TCP check of (pgmesh replaces
   * HAProxy, so `killall -0 haproxy` would fail forever after the migration)
   */
  readonly ownListener?: { readonly name: string; readonly host: string; readonly port: number }
}

const lineOf = (n: KeepalivedNode) => [n.keyword, ...n.args].join(' ')

const invalid = (n: KeepalivedNode, message: string) =>
  err(pgmeshError('IMPORT_INVALID', `keepalived.conf line ${n.line}: '${lineOf(n)}': ${message}`))

/** Keepalived splits a script string into argv at blanks, keeping quoted parts together; no shell. */
export function scriptArgv(script: string): string[] {
  const out: string[] = []
  let word = ''
  let inWord = false
  let quote: string | null = null
  for (const c of script) {
    if (quote !== null) {
      if (c === quote) quote = null
      else word += c
    } else if (c === '"' || c === "'") {
      quote = c
      inWord = true
    } else if (c === ' ' || c === '\t') {
      if (inWord) out.push(word)
      word = ''
      inWord = false
    } else {
      word += c
      inWord = true
    }
  }
  if (inWord) out.push(word)
  return out
}

const TOP_REASONS: Record<string, string> = {
  vrrp_sync_group: 'pgmesh has one VIP per cluster; there is nothing to group',
  virtual_server: 'LVS load balancing: use a pgmesh listener (role servers) instead',
  virtual_server_group: 'LVS load balancing: use a pgmesh listener (role servers) instead',
  static_ipaddress: "static addresses are the host's business, not pgmesh's",
  static_routes: "static routes are the host's business, not pgmesh's",
  static_rules: "static rules are the host's business, not pgmesh's",
  include: "includes are not followed: import the included file's content",
  vrrp_track_file:
    'track files hold a number Keepalived adds to the priority; pgmesh file checks pass or fail (kind file)',
  track_file:
    'track files hold a number Keepalived adds to the priority; pgmesh file checks pass or fail (kind file)',
  vrrp_track_process: 'process tracking: use an exec check (e.g. pidof NAME) instead',
  track_process: 'process tracking: use an exec check (e.g. pidof NAME) instead',
  bfd_instance:
    'BFD has no pgmesh counterpart; pgmesh sees a dead peer from its TCP connection and heartbeats',
  linkbeat_use_polling: 'Keepalived process setting',
  net_namespace: 'run pgmesh itself in the namespace (ip netns exec)',
}

const INSTANCE_REASONS: Record<string, string> = {
  state: 'pgmesh elects the MASTER by priority; there is no initial state',
  virtual_router_id: 'the cluster name and secret identify a pgmesh cluster; there are no VRRP router ids',
  authentication: 'the cluster secret (pgmesh keygen, node.secretFile) authenticates every member instead',
  track_interface:
    'interface tracking has no pgmesh counterpart: a node whose NIC is down stops hearing the mesh and loses its lease',
  track_file:
    'track files hold a number Keepalived adds to the priority; pgmesh file checks pass or fail (kind file)',
  track_process: 'process tracking: use an exec check (e.g. pidof NAME) instead',
  virtual_ipaddress_excluded: 'pgmesh holds one VIP; add other addresses with a notify script',
  virtual_routes: 'routes follow the VIP only through a notify script in pgmesh',
  virtual_rules: 'rules follow the VIP only through a notify script in pgmesh',
  garp_master_refresh: 'pgmesh repeats gratuitous ARP after a partition heals, not on a timer',
  garp_master_refresh_repeat: 'pgmesh repeats gratuitous ARP after a partition heals, not on a timer',
  garp_lower_prio_repeat: 'pgmesh repeats gratuitous ARP after a partition heals, not on a timer',
  garp_lower_prio_delay: 'pgmesh repeats gratuitous ARP after a partition heals, not on a timer',
  garp_master_delay: 'pgmesh sends its gratuitous ARPs at once on becoming MASTER (vip.garpIntervalMs apart)',
  smtp_alert: 'pgmesh sends no mail: alert on its metrics (deploy/prometheus/pgmesh-alerts.yml)',
  dont_track_primary: 'interface tracking has no pgmesh counterpart',
  use_vmac: 'pgmesh adds the VIP to the interface itself; no VRRP MAC address',
  vmac_xmit_base: 'pgmesh adds the VIP to the interface itself; no VRRP MAC address',
  version: 'pgmesh does not speak VRRP',
  vrrp_version: 'pgmesh does not speak VRRP',
  notify_master_rx_lower_pri: 'pgmesh never sees a lower-priority MASTER: at most one node holds the VIP',
  debug: 'use node.logLevel',
  native_ipv6: 'pgmesh does not speak VRRP',
  accept: 'pgmesh adds the VIP as a local address; it always accepts traffic to it',
  no_accept: 'pgmesh adds the VIP as a local address; it always accepts traffic to it',
  strict_mode: 'pgmesh does not speak VRRP',
  mcast_src_ip: 'pgmesh gossips over TCP (node.gossip.advertise); no multicast',
  unicast_ttl: 'pgmesh gossips over TCP',
  lvs_sync_daemon_interface: 'LVS has no pgmesh counterpart',
  kernel_rx_buf_size: 'Keepalived process setting',
}

/** Election timings pgmesh ships with (protocol/src/election.ts); scaled for a slow advert_int. */
const ELECTION_DEFAULTS = {
  heartbeatIntervalMs: 50,
  leaseMs: 250,
  electionTimeoutMinMs: 300,
  electionTimeoutMaxMs: 400,
  maxClockDriftMs: 10,
}

/**
 * Maps keepalived.conf to pgmesh's election, VIP, tracked checks and join list. One
 * vrrp_instance is mapped (pgmesh has one VIP per cluster); the others are reported.
 */
export function mapKeepalived(
  tree: readonly KeepalivedNode[],
  opts: KeepalivedMapOptions = {},
): Result<KeepalivedImport> {
  const notes: ImportNote[] = []
  const add = (n: KeepalivedNode, kind: ImportNote['kind'], reason: string) =>
    notes.push({ source: 'keepalived', kind, line: n.line, directive: lineOf(n), reason })
  let routerId: string | null = null
  const scripts = new Map<string, Script>()
  const instances: KeepalivedNode[] = []

  for (const n of tree) {
    if (n.keyword === 'global_defs') {
      for (const c of n.children ?? []) {
        if (c.keyword === 'router_id' && c.args[0] !== undefined) {
          routerId = c.args[0]
        } else {
          add(c, 'unmapped', 'Keepalived process setting: pgmesh is configured by its node section')
        }
      }
    } else if (n.keyword === 'vrrp_script') {
      const r = readScript(n, add)
      if (!r.ok) return r
      scripts.set(n.args[0]!, { n, ...r.value })
    } else if (n.keyword === 'vrrp_instance') {
      instances.push(n)
    } else {
      add(n, 'unmapped', TOP_REASONS[n.keyword] ?? 'no pgmesh counterpart known to the importer')
    }
  }

  const out: InstanceOut = {
    priority: null,
    interface: null,
    join: [],
    advertise: null,
    vipAddress: null,
    notify: {},
    garpCount: null,
    election: {},
    checks: [],
    tracked: new Set(),
  }
  const [instance, ...others] = instances
  for (const o of others) {
    add(
      o,
      'unmapped',
      `pgmesh holds one VIP per cluster: only vrrp_instance ${instance!.args[0] ?? ''} (line ${instance!.line}) is imported; run a second pgmesh cluster for this one`,
    )
  }
  if (instance !== undefined) {
    const r = readInstance(instance, scripts, opts, out, add)
    if (!r.ok) return r
  }
  for (const [name, s] of scripts) {
    if (!out.tracked.has(name))
      add(s.n, 'unmapped', `vrrp_script ${name} is not tracked by the imported instance`)
  }
  const { tracked: _, ...mapped } = out
  return ok({ routerId, ...mapped, notes })
}

type Add = (n: KeepalivedNode, kind: ImportNote['kind'], reason: string) => void

/** What the imported vrrp_instance fills in. */
interface InstanceOut {
  priority: number | null
  interface: string | null
  join: string[]
  advertise: string | null
  vipAddress: string | null
  notify: Partial<Omit<NotifyScripts, 'timeoutMs'>>
  garpCount: number | null
  election: ElectionConfigInput
  checks: CheckInput[]
  /** the vrrp_script names the instance's track_script lists */
  tracked: Set<string>
}

/** A vrrp_script: the check it becomes, and whether its weight is `reverse` (no pgmesh counterpart). */
interface Script {
  readonly n: KeepalivedNode
  readonly check: CheckInput
  readonly reverse: boolean
}

function readScript(n: KeepalivedNode, add: Add): Result<{ check: CheckInput; reverse: boolean }> {
  const name = n.args[0]
  if (name === undefined) return invalid(n, 'vrrp_script needs a name')
  if (n.children === null) return invalid(n, 'vrrp_script needs a { … } block')
  let command: string[] | null = null
  let intervalMs = 1000
  let timeoutMs: number | null = null
  let rise = 1
  let fall = 1
  let weight = 0
  let reverse = false
  for (const c of n.children) {
    const v = c.args[0]
    switch (c.keyword) {
      case 'script':
        if (v === undefined) return invalid(c, 'script needs a command')
        command = scriptArgv(c.args.join(' '))
        if (command.length === 0) return invalid(c, 'script needs a command')
        if (/[|&;<>$`]/.test(c.args.join(' '))) {
          add(
            c,
            'review',
            'pgmesh runs the command without a shell, as Keepalived does: wrap shell syntax in /bin/sh -c',
          )
        }
        break
      case 'interval':
      case 'timeout': {
        const ms = v === undefined ? null : keepalivedSecondsMs(v)
        if (ms === null || ms < 10) return invalid(c, `${c.keyword} must be a number of seconds`)
        if (c.keyword === 'interval') intervalMs = ms
        else timeoutMs = ms
        break
      }
      case 'rise':
      case 'fall': {
        const k = intIn(v, 1, 100)
        if (k === null) return invalid(c, `${c.keyword} must be 1-100`)
        if (c.keyword === 'rise') rise = k
        else fall = k
        break
      }
      case 'weight': {
        const w = intIn(v, -254, 254)
        if (w === null) return invalid(c, 'weight must be -254..254')
        weight = w
        reverse = c.args[1] === 'reverse'
        break
      }
      default:
        add(
          c,
          'unmapped',
          c.keyword === 'user'
            ? 'scripts run as the pgmesh service user'
            : 'no pgmesh counterpart known to the importer',
        )
    }
  }
  if (command === null) return invalid(n, `vrrp_script ${name} has no script`)
  // Keepalived lets a script run up to its interval; pgmesh wants the timeout within the interval
  const timeout = Math.min(timeoutMs ?? intervalMs, intervalMs)
  if (timeoutMs !== null && timeoutMs > intervalMs) {
    add(
      n,
      'review',
      `timeout ${timeoutMs} ms is longer than the interval: pgmesh uses ${intervalMs} ms (runs never overlap)`,
    )
  }
  return ok({
    reverse,
    check: {
      name: pgmeshName(name, 'check'),
      kind: 'exec',
      command,
      intervalMs: Math.min(intervalMs, 3_600_000),
      timeoutMs: Math.min(timeout, 600_000),
      rise,
      fall,
      weight,
    },
  })
}

function readInstance(
  instance: KeepalivedNode,
  scripts: ReadonlyMap<string, Script>,
  opts: KeepalivedMapOptions,
  out: InstanceOut,
  add: Add,
): Result<void> {
  if (instance.children === null) return invalid(instance, 'vrrp_instance needs a { … } block')
  let genericNotify: KeepalivedNode | null = null
  for (const c of instance.children) {
    const v = c.args[0]
    switch (c.keyword) {
      case 'interface':
        if (v === undefined || !/^[A-Za-z0-9_.:@-]{1,15}$/.test(v))
          return invalid(c, 'interface needs an interface name')
        out.interface ??= v
        break
      case 'priority': {
        const p = intIn(v, 0, 255)
        if (p === null) return invalid(c, 'priority must be 1-255')
        out.priority = Math.min(254, Math.max(1, p))
        if (p === 255 || p === 0) add(c, 'review', `pgmesh priorities are 1-254: ${out.priority} is used`)
        break
      }
      case 'advert_int': {
        const ms = v === undefined ? null : keepalivedSecondsMs(v)
        if (ms === null || ms === 0) return invalid(c, 'advert_int must be a number of seconds')
        readAdvertInt(c, ms, out.election, add)
        break
      }
      case 'nopreempt':
        out.election.nopreempt = true
        break
      case 'preempt':
        break
      case 'preempt_delay': {
        const ms = v === undefined ? null : keepalivedSecondsMs(v)
        if (ms === null || ms > 3_600_000) return invalid(c, 'preempt_delay must be 0-3600 seconds')
        out.election.preemptDelayMs = ms
        break
      }
      case 'unicast_src_ip':
        if (v === undefined || !(isIPv4(v) || isIPv6(v)))
          return invalid(c, 'unicast_src_ip needs an IP address')
        out.advertise = hostPort(v, DEFAULT_GOSSIP_PORT)
        add(
          c,
          'review',
          `became node.gossip.advertise ${out.advertise}: pgmesh gossips over TCP, port ${DEFAULT_GOSSIP_PORT} unless you choose another`,
        )
        break
      case 'unicast_peer': {
        // one peer a line, as Keepalived reads them: the address, then its options (min_ttl N, max_ttl N)
        for (const p of c.children ?? []) {
          if (!(isIPv4(p.keyword) || isIPv6(p.keyword))) {
            return invalid(p, `unicast peer '${p.keyword}' is not an IP address (one peer a line)`)
          }
          out.join.push(hostPort(p.keyword, DEFAULT_GOSSIP_PORT))
          if (p.args.length > 0) add(p, 'unmapped', `peer options not carried over: ${p.args.join(' ')}`)
        }
        if (out.join.length > 0) {
          add(
            c,
            'review',
            `the peers became node.join (${out.join.join(', ')}): pgmesh gossips over TCP, port ${DEFAULT_GOSSIP_PORT} unless you choose another`,
          )
        }
        break
      }
      case 'virtual_ipaddress': {
        const r = readVips(c, out, add)
        if (!r.ok) return r
        break
      }
      case 'track_script':
        for (const t of c.children ?? []) {
          const r = trackScript(t, scripts, opts, add)
          if (!r.ok) return r
          out.tracked.add(t.keyword)
          if (r.value !== null && !out.checks.some((k) => k.name === r.value?.name)) out.checks.push(r.value)
        }
        break
      case 'notify_master':
      case 'notify_backup':
      case 'notify_fault':
      case 'notify_stop': {
        if (v === undefined) return invalid(c, `${c.keyword} needs a script`)
        const argv = scriptArgv(c.args.join(' '))
        const state = c.keyword.slice('notify_'.length) as 'master' | 'backup' | 'fault' | 'stop'
        out.notify[state] = argv
        add(
          c,
          'review',
          `notify.${state}: pgmesh runs it on the same transition, with PGMESH_STATE, PGMESH_VIP and PGMESH_NODE in the environment (no shell), and kills it after vip.notify.timeoutMs`,
        )
        break
      }
      case 'notify':
        if (v === undefined) return invalid(c, 'notify needs a script')
        genericNotify = c
        break
      case 'garp_master_repeat': {
        const k = intIn(v, 0, 100)
        if (k === null) return invalid(c, 'garp_master_repeat must be 0-100')
        out.garpCount = k
        break
      }
      default:
        add(c, 'unmapped', INSTANCE_REASONS[c.keyword] ?? 'no pgmesh counterpart known to the importer')
    }
  }
  if (genericNotify !== null) {
    const argv = scriptArgv(genericNotify.args.join(' '))
    const missing = (['master', 'backup', 'fault'] as const).filter((s) => out.notify[s] === undefined)
    for (const s of missing) out.notify[s] = argv
    add(
      genericNotify,
      'review',
      `became notify.${missing.join('/')}: Keepalived passes "INSTANCE name STATE priority" as arguments, pgmesh passes none and sets PGMESH_STATE (MASTER, BACKUP, FAULT) instead`,
    )
  }
  return ok(undefined)
}

const hostPort = (host: string, port: number) => (isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`)

function readAdvertInt(c: KeepalivedNode, ms: number, election: ElectionConfigInput, add: Add): void {
  const downMs = 3 * ms
  if (ms <= 1000) {
    add(
      c,
      'review',
      `pgmesh's default election timings are kept: Keepalived declared a MASTER dead after about 3 × advert_int (${downMs} ms); pgmesh starts an election 300-400 ms after the last lease renewal and fails over a dead process faster still`,
    )
    return
  }
  // a slow advert_int was chosen for a slow or lossy network: keep the defaults' ratios, slowed
  const f = Math.min(ms / 1000, 240)
  for (const [k, v] of Object.entries(ELECTION_DEFAULTS)) {
    ;(election as Record<string, number>)[k] = Math.round(v * f)
  }
  add(
    c,
    'review',
    `election timings scaled by ${f} from pgmesh's defaults (lease ${election.leaseMs} ms, election timeout ${election.electionTimeoutMinMs}-${election.electionTimeoutMaxMs} ms), still well under Keepalived's ${downMs} ms`,
  )
}

function readVips(
  c: KeepalivedNode,
  out: { interface: string | null; vipAddress: string | null },
  add: Add,
): Result<void> {
  for (const entry of c.children ?? []) {
    const [addr, ...opts] = [entry.keyword, ...entry.args]
    if (addr === undefined) continue
    const cidr = addr.includes('/') ? addr : `${addr}/${isIPv6(addr) ? 128 : 32}`
    if (!VipAddressSchema.safeParse(cidr).success)
      return invalid(entry, `'${addr}' is not an IP address (with an optional /prefix)`)
    if (out.vipAddress !== null) {
      add(
        entry,
        'unmapped',
        `pgmesh holds one VIP; ${out.vipAddress} is imported, this one is not (add it with a notify script)`,
      )
      continue
    }
    out.vipAddress = cidr
    const unmapped: string[] = []
    for (let i = 0; i < opts.length; i++) {
      const o = opts[i]!
      const val = opts[i + 1]
      if (o === 'dev' && val !== undefined) {
        if (out.interface !== null && out.interface !== val) {
          add(
            entry,
            'review',
            `the VIP is on ${val}, the instance's interface is ${out.interface}: pgmesh adds it to ${val}`,
          )
        }
        out.interface = val
        i++
      } else if (['label', 'brd', 'broadcast', 'scope'].includes(o) && val !== undefined) {
        unmapped.push(`${o} ${val}`)
        i++
      } else {
        unmapped.push(o)
      }
    }
    if (!addr.includes('/')) {
      add(entry, 'review', `no prefix given: ${cidr}, as Keepalived adds it`)
    }
    if (unmapped.length > 0)
      add(entry, 'unmapped', `address options not carried over: ${unmapped.join(', ')}`)
  }
  return ok(undefined)
}

function trackScript(
  t: KeepalivedNode,
  scripts: ReadonlyMap<string, Script>,
  opts: KeepalivedMapOptions,
  add: Add,
): Result<CheckInput | null> {
  const s = scripts.get(t.keyword)
  if (s === undefined) return invalid(t, `track_script names '${t.keyword}', which no vrrp_script defines`)
  let weight = s.check.weight
  let reverse = s.reverse
  if (t.args[0] === 'weight') {
    const w = intIn(t.args[1], -254, 254)
    if (w === null) return invalid(t, 'weight must be -254..254')
    weight = w
    reverse = t.args[2] === 'reverse'
  } else if (t.args.length > 0) {
    return invalid(t, `expected '${t.keyword} [weight N [reverse]]'`)
  }
  if (reverse) {
    // a reversed weight applies while the script fails; pgmesh weights follow Keepalived's plain rule
    add(
      t,
      'unmapped',
      "a 'reverse' weight has no pgmesh counterpart: the check is left out; invert the script's exit status and add it back",
    )
    return ok(null)
  }
  const check = { ...s.check, weight }
  const own = opts.ownListener
  if (check.kind === 'exec' && check.command.some((w) => /haproxy/i.test(w))) {
    if (own !== undefined) {
      add(
        s.n,
        'review',
        `this script checks HAProxy, which pgmesh replaces: it became a tcp check of pgmesh's own listener '${own.name}' (${own.host}:${own.port})`,
      )
      return ok({
        name: check.name,
        kind: 'tcp',
        host: own.host,
        port: own.port,
        intervalMs: check.intervalMs,
        timeoutMs: check.timeoutMs,
        rise: check.rise,
        fall: check.fall,
        weight,
      })
    }
    add(
      s.n,
      'review',
      'this script checks HAProxy, which pgmesh replaces: it will fail once HAProxy is gone; point it at pgmesh or remove it',
    )
  }
  return ok(check)
}
