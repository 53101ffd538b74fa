import { type ChildProcess, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import type { VipAddress } from '@pgmesh/protocol'
import type { Logger } from '../log.js'
import { type CommandResult, describeFailure } from '../run-command.js'

/**
 * The kernel side of the lease. While this node holds the VIP, nftables tables of its own make
 * the host answer for the VIP only while an element of a timeout set lives:
 *
 *   inet  input:  packets to the VIP are dropped unless the VIP is in @lease
 *   inet  output: packets from the VIP (replies, IPv6 neighbour advertisements: the kernel sends
 *                 them from the target address) are dropped unless the VIP is in @lease
 *   arp   output: ARP from the VIP (replies, announcements) is dropped unless the VIP is in @lease
 *
 * Every lease renewal refreshes the element's timeout to the remaining lease, so a killed, paused
 * or cut-off MASTER stops answering when its lease ends, with no action of its own. Renewals go
 * through one long-lived `nft -e -i` process (a line = one atomic batch; `-e` echoes what was
 * applied, so a renewal is confirmed): spawning nft for every renewal (20 a second at the default
 * timings) would cost a process each time.
 */
export interface KernelFence {
  /** false once nft turned out missing or refused the tables (warned once, `VIP_FENCE_UNAVAILABLE`) */
  readonly available: boolean
  /**
   * Installs (or replaces) the tables for `address`, with the lease element living `timeoutMs`
   * (null: no timeout, for a caller that never reports its lease). False when not available.
   */
  arm(address: VipAddress, timeoutMs: number | null): Promise<boolean>
  /**
   * Refreshes the element to live `timeoutMs()` ms (≤ 0: removed at once). Never waits. At most
   * one renewal is on its way to the kernel: later ones coalesce into the next, whose timeout is
   * computed when it is written, less how long the last one took to be applied, so a renewal
   * that waited in a pipe never stretches the element past the lease.
   */
  renew(timeoutMs: () => number): void
  /** Removes the element at once: the host stops answering for the VIP (the address may stay). */
  revoke(): Promise<void>
  /** Removes the tables of `address` (or of the armed one). Idempotent; logged, never thrown. */
  remove(address?: VipAddress): Promise<void>
  /** At start: removes every fence table of this node and interface a killed predecessor left. */
  removeLeftovers(): Promise<string[]>
  /**
   * Starts the renewal process ahead of need (at start-up, on a BACKUP too): the first acquire
   * then arms through it, with no process to start on the way to the VIP.
   */
  warm(): void
  /** Ends the renewal process. */
  close(): void
  /** renewals written, confirmed by nft, refused by nft; how long the last one took to be applied (ms) */
  stats(): { renewals: number; confirmed: number; errors: number; lastApplyMs: number }
}

export interface KernelFenceOptions {
  readonly iface: string
  readonly node: string
  /** `nft` found on this host (a path, or the bare name) */
  readonly nft: string
  /** runs argv once (inside the driver's network namespace, if any) with the command timeout */
  readonly exec: (argv: string[]) => Promise<CommandResult>
  /** argv for a long-lived child (prefixed with `ip netns exec NS` in tests) */
  readonly wrap: (argv: string[]) => string[]
  readonly timeoutMs: number
  /** already a child logger with component 'vip' */
  readonly logger: Logger
}

const hash = (s: string, n: number) => createHash('sha256').update(s).digest('hex').slice(0, n)

/** Every fence table of this node on this interface starts with this. */
export function fencePrefix(iface: string, node: string): string {
  return `pgmesh_fence_${iface.replace(/[^A-Za-z0-9_]/g, '_')}_${hash(node, 8)}_`
}

/** `pgmesh_fence_eth0_1a2b3c4d_5e6f70`: one per VIP address, so a dual-stack pair has two. */
export function fenceTable(iface: string, node: string, ip: string): string {
  return `${fencePrefix(iface, node)}${hash(ip.toLowerCase(), 6)}`
}

const setType = (a: VipAddress) => (a.family === 'ipv4' ? 'ipv4_addr' : 'ipv6_addr')
const l3 = (a: VipAddress) => (a.family === 'ipv4' ? 'ip' : 'ip6')

function elements(table: string, a: VipAddress, timeoutMs: number | null): string[] {
  if (timeoutMs !== null && timeoutMs <= 0) return []
  const el = timeoutMs === null ? a.ip : `${a.ip} timeout ${Math.max(1, Math.floor(timeoutMs))}ms`
  const out = [`add element inet ${table} lease { ${el} }`]
  if (a.family === 'ipv4') out.push(`add element arp ${table} lease { ${el} }`)
  return out
}

/** add-then-delete: removes a table without failing when there is none (nft 1.0.6 has no `destroy`). */
function dropTables(table: string, family: VipAddress['family'] | 'both'): string[] {
  const out = [`add table inet ${table}`, `delete table inet ${table}`]
  if (family !== 'ipv6') out.push(`add table arp ${table}`, `delete table arp ${table}`)
  return out
}

/** One atomic batch: fresh tables for `a`, the lease element living `timeoutMs` (null: forever). */
export function fenceArmScript(table: string, a: VipAddress, timeoutMs: number | null): string {
  const ip = a.ip
  const lines = [
    ...dropTables(table, 'both'),
    `add table inet ${table}`,
    `add set inet ${table} lease { type ${setType(a)}; flags timeout; }`,
    // before the filter hooks, so an operator's accept rules cannot let the VIP through
    `add chain inet ${table} in { type filter hook input priority -10; policy accept; }`,
    `add chain inet ${table} out { type filter hook output priority -10; policy accept; }`,
    `add rule inet ${table} in ${l3(a)} daddr ${ip} ${l3(a)} daddr != @lease counter drop`,
    `add rule inet ${table} out ${l3(a)} saddr ${ip} ${l3(a)} saddr != @lease counter drop`,
  ]
  if (a.family === 'ipv4') {
    lines.push(
      `add table arp ${table}`,
      `add set arp ${table} lease { type ipv4_addr; flags timeout; }`,
      `add chain arp ${table} out { type filter hook output priority 0; policy accept; }`,
      `add rule arp ${table} out arp saddr ip ${ip} arp saddr ip != @lease counter drop`,
    )
  }
  return [...lines, ...elements(table, a, timeoutMs)].join('\n')
}

/** One line (one batch for `nft -i`): the element replaced by one living `timeoutMs`. */
export function fenceRenewLine(table: string, a: VipAddress, timeoutMs: number): string {
  const flush = [`flush set inet ${table} lease`]
  if (a.family === 'ipv4') flush.push(`flush set arp ${table} lease`)
  return [...flush, ...elements(table, a, timeoutMs)].join('; ')
}

export function fenceRemoveScript(table: string, family: VipAddress['family'] | 'both' = 'both'): string {
  return dropTables(table, family).join('\n')
}

/** The fence tables `nft list tables` shows that start with `prefix`, as `family name`. */
export function parseFenceTables(listing: string, prefix: string): { family: string; name: string }[] {
  return [...listing.matchAll(/^table (inet|arp) (\S+)$/gm)]
    .filter((m) => m[2]!.startsWith(prefix))
    .map((m) => ({ family: m[1]!, name: m[2]! }))
}

/** Never spawn the renewal process more often than this after it died. */
const RESPAWN_MIN_MS = 1_000
/** A renewal nft has not confirmed after this long is taken as lost (the next one is written). */
const CONFIRM_TIMEOUT_MS = 1_000

export function createKernelFence(opts: KernelFenceOptions): KernelFence {
  const log = opts.logger
  let available = true
  let warned = false
  let armed: { address: VipAddress; table: string } | null = null
  let proc: ChildProcess | null = null
  let spawnedAt = Number.NEGATIVE_INFINITY
  let renewals = 0
  let confirmed = 0
  let errors = 0
  let errorLogged = false
  /** the renewal written and not yet confirmed, and the latest one wanted since */
  let inFlight: number | null = null
  let wanted: (() => number) | null = null
  let lastApplyMs = 0
  let lastArmMs = 0
  /** the first confirmation of a new process includes its start-up: not a measure of the pipe */
  let freshProcess = true
  let armWaiter: { table: string; done: (ok: boolean) => void } | null = null

  const unavailable = (r: CommandResult, what: string) => {
    available = false
    const fields = { code: 'VIP_FENCE_UNAVAILABLE', reason: describeFailure(r, opts.timeoutMs) }
    if (warned) return log.debug(fields, what)
    warned = true
    log.warn(
      fields,
      `${what}: the VIP is not fenced in the kernel; a killed or paused MASTER keeps answering for it until its address lifetime ends (install nftables; the process needs CAP_NET_ADMIN)`,
    )
  }

  /** one nft invocation = one atomic batch; the whole script fits in one argument */
  const apply = (script: string) => opts.exec([opts.nft, script.replaceAll('\n', '; ')])

  const renewer = (): ChildProcess | null => {
    if (proc !== null) return proc
    const now = performance.now()
    if (now - spawnedAt < RESPAWN_MIN_MS) return null
    spawnedAt = now
    freshProcess = true
    const [file, ...args] = opts.wrap([opts.nft, '-e', '-i'])
    let p: ChildProcess
    try {
      p = spawn(file!, args, { stdio: ['pipe', 'pipe', 'pipe'] })
    } catch (e) {
      log.error({ code: 'VIP_FENCE_FAILED', err: String(e) }, 'cannot start nft for the fence renewals')
      return null
    }
    p.stdin?.on('error', () => undefined)
    let out = ''
    p.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk
      let i = out.indexOf('\n')
      while (i >= 0) {
        const line = out.slice(0, i)
        // an arm's batch echoes its chains once it is committed (renewals add no chain)
        if (armWaiter !== null && line.startsWith(`add chain inet ${armWaiter.table} in `))
          armWaiter.done(true)
        if (line.startsWith('add element inet ')) {
          confirmed++
          if (inFlight !== null && !freshProcess) lastApplyMs = performance.now() - inFlight
          freshProcess = false
          inFlight = null
          pump()
        }
        out = out.slice(i + 1)
        i = out.indexOf('\n')
      }
    })
    p.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      errors++
      inFlight = null
      armWaiter?.done(false)
      const fields = { code: 'VIP_FENCE_FAILED', nft: chunk.trim().slice(0, 300) }
      if (errorLogged) log.debug(fields, 'nft refused a fence renewal')
      else {
        errorLogged = true
        log.error(fields, 'nft refused a fence renewal: the VIP may stop answering before the lease ends')
      }
    })
    p.on('error', (e) =>
      log.warn({ code: 'VIP_FENCE_FAILED', err: e.message }, 'the fence renewal process failed'),
    )
    p.on('exit', (code, signal) => {
      if (proc === p) proc = null
      inFlight = null
      armWaiter?.done(false)
      if (armed !== null)
        log.warn({ code, signal }, 'the fence renewal process ended; it is restarted on the next renewal')
    })
    proc = p
    return p
  }

  const pump = () => {
    const a = armed
    if (a === null || wanted === null) return
    const now = performance.now()
    if (inFlight !== null && now - inFlight < CONFIRM_TIMEOUT_MS) return
    const p = renewer()
    if (p === null || p.stdin === null || !p.stdin.writable) return
    // a quarter of the lease at most: a slow pipe must not turn renewals into flushes, nor cut
    // the element so short that it runs out between two renewals
    const raw = wanted()
    const timeoutMs = raw <= 0 ? raw : raw - Math.min(lastApplyMs, raw / 4)
    wanted = null
    renewals++
    // a flush alone echoes nothing: nothing to wait for
    inFlight = timeoutMs > 0 ? now : null
    p.stdin.write(`${fenceRenewLine(a.table, a.address, timeoutMs)}\n`)
  }

  /** The arm batch through the running renewal process; false (use a one-shot nft) if there is none or it fails. */
  const armThroughPipe = (table: string, script: string): Promise<boolean> => {
    const p = proc
    if (p === null || p.stdin === null || !p.stdin.writable || armWaiter !== null)
      return Promise.resolve(false)
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => waiter.done(false), CONFIRM_TIMEOUT_MS)
      const waiter = {
        table,
        done: (ok: boolean) => {
          clearTimeout(timer)
          if (armWaiter === waiter) armWaiter = null
          resolve(ok)
        },
      }
      armWaiter = waiter
      p.stdin?.write(`${script.replaceAll('\n', '; ')}\n`)
    })
  }

  return {
    get available() {
      return available
    },
    warm() {
      if (available) renewer()
    },
    async arm(address, timeoutMs) {
      if (!available) return false
      const table = fenceTable(opts.iface, opts.node, address.ip)
      // the element's life starts when nft commits, up to a process start later: the last arm's
      // duration is taken off, so a loaded host does not stretch it past the lease
      const started = performance.now()
      const t =
        timeoutMs === null || timeoutMs <= 0 ? timeoutMs : timeoutMs - Math.min(lastArmMs, timeoutMs / 4)
      const script = fenceArmScript(table, address, t)
      if (await armThroughPipe(table, script)) {
        lastArmMs = performance.now() - started
        armed = { address, table }
        log.debug({ table, timeoutMs: t, armMs: Math.round(lastArmMs) }, 'VIP fenced')
        return true
      }
      const r = await apply(script)
      lastArmMs = performance.now() - started
      if (r.code !== 0) {
        unavailable(r, 'cannot install the nftables fence for the VIP')
        return false
      }
      armed = { address, table }
      log.debug({ table, timeoutMs }, 'VIP fenced')
      return true
    },
    renew(timeoutMs) {
      if (armed === null) return
      wanted = timeoutMs
      pump()
    },
    async revoke() {
      const a = armed
      if (a === null) return
      const r = await apply(fenceRenewLine(a.table, a.address, 0))
      if (r.code !== 0) {
        log.error(
          { code: 'VIP_FENCE_FAILED', table: a.table, reason: describeFailure(r, opts.timeoutMs) },
          'cannot revoke the VIP fence',
        )
      }
    },
    async remove(address) {
      const target = address ?? armed?.address
      if (target === undefined) return
      const table = fenceTable(opts.iface, opts.node, target.ip)
      if (armed?.table === table) armed = null
      if (!available) return
      const r = await apply(fenceRemoveScript(table, target.family))
      if (r.code !== 0 && r.spawnError === null) {
        log.error(
          { code: 'VIP_FENCE_FAILED', table, reason: describeFailure(r, opts.timeoutMs) },
          `cannot remove the nftables fence: remove it by hand (nft delete table inet ${table})`,
        )
      }
    },
    async removeLeftovers() {
      const r = await opts.exec([opts.nft, 'list', 'tables'])
      if (r.code !== 0) {
        if (r.spawnError !== null) unavailable(r, 'nft not found')
        return []
      }
      const found = parseFenceTables(r.stdout, fencePrefix(opts.iface, opts.node))
      if (found.length === 0) return []
      const script = found.map((t) => `delete table ${t.family} ${t.name}`).join('; ')
      const d = await opts.exec([opts.nft, script])
      if (d.code !== 0) {
        log.error(
          { code: 'VIP_FENCE_FAILED', tables: found, reason: describeFailure(d, opts.timeoutMs) },
          'cannot remove a fence left by a previous run',
        )
        return []
      }
      return found.map((t) => `${t.family} ${t.name}`)
    },
    close() {
      const p = proc
      proc = null
      if (p === null) return
      p.stdin?.end()
      // nft exits at the end of its input; a hung one is killed
      const t = setTimeout(() => p.kill('SIGKILL'), 1_000)
      t.unref()
      p.once('exit', () => clearTimeout(t))
    },
    stats: () => ({ renewals, confirmed, errors, lastApplyMs }),
  }
}
