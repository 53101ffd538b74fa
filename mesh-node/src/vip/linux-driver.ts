import { existsSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import type { VipAddress, VipConfig } from '@pgmesh/protocol'
import type { Logger } from '../log.js'
import { type CommandGate, type CommandResult, describeFailure, runCommand } from '../run-command.js'
import { createKernelFence } from './kernel-fence.js'
import { createNotifier } from './notifier.js'
import { createSynBlock } from './syn-block.js'
import type { VipDriver, VipState } from './types.js'

export interface LinuxDriverOptions {
  readonly config: VipConfig
  readonly address: VipAddress
  readonly iface: string
  readonly node: string
  /** already a child logger with component 'vip' */
  readonly logger: Logger
  /** run `ip` and `arping` inside this network namespace (`ip netns exec NS …`): for tests */
  readonly netns?: string
  /** every `ip` command is killed after this long. Default 5000 */
  readonly commandTimeoutMs?: number
  /**
   * How many sessions through the proxy have `ip` as their local address now: `quiesce()` waits
   * for none (up to `vip.drainMs`). Without it, `quiesce()` only blocks new connections.
   */
  readonly sessionsTo?: (ip: string) => number
  /** which notify-script programs this node allows (node.allow); absent: every script runs */
  readonly commands?: CommandGate
  /** the monotonic clock `lease(until)` is given in (the election's). Default performance.now */
  readonly mono?: () => number
  /** the second VIP of a dual-stack pair: its hand-over block gets a table of its own */
  readonly second?: boolean
}

const DEFAULT_COMMAND_TIMEOUT_MS = 5_000
/** `quiesce()` waits at least this long (bounded by `drainMs`): handshakes under way when the block began get accepted */
export const QUIESCE_SETTLE_MS = 100
/** how often `quiesce()` counts the sessions through the VIP */
const QUIESCE_POLL_MS = 20
const ADD_PRESENT = /File exists|already assigned/i
const DEL_ABSENT = /Cannot assign requested address|Address not found|Cannot find device/i

/** `ip` and `arping` live in sbin, which an unprivileged PATH lacks. */
function binary(name: string): string {
  for (const dir of ['/usr/sbin', '/sbin', '/usr/bin', '/bin']) {
    if (existsSync(`${dir}/${name}`)) return `${dir}/${name}`
  }
  return name
}

/** `fd00:0::100` and `fd00::100` are the same address. */
function canonicalIp(ip: string): string {
  if (!ip.includes(':')) return ip
  try {
    return new URL(`http://[${ip}]/`).hostname.slice(1, -1)
  } catch {
    return ip.toLowerCase()
  }
}

/** The addresses `ip -o addr show dev IFACE` lists, as `ip/prefix`. */
export function parseAddrShow(output: string): string[] {
  return [...output.matchAll(/\binet6?\s+([0-9a-fA-F:.]+)\/(\d+)/g)].map(
    (m) => `${canonicalIp(m[1]!)}/${m[2]}`,
  )
}

type ArpingVariant = 'habets' | 'iputils'

/** How many ARP packets arping says it sent, or null if it does not say. */
function arpsSent(out: string): number | null {
  const m = /(\d+) packets transmitted/.exec(out) ?? /Sent (\d+) probes?/.exec(out)
  return m === null ? null : Number(m[1])
}

/**
 * `ip addr add/del` on the interface, plus gratuitous ARP through arping (either Debian's
 * `arping` package, Thomas Habets' tool, or iputils-arping: the flags differ, so the first GARP
 * asks `arping -h` which one is installed). Notify scripts run as with the exec driver. Before an
 * orderly hand-over, `quiesce()` drops new connections to the VIP (nftables) and lets the
 * sessions through it end; the rule goes once the address is gone.
 */
export function createLinuxDriver(opts: LinuxDriverOptions): VipDriver {
  const { iface } = opts
  const log = opts.logger
  const cmdTimeoutMs = opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS
  // a live reconfigure() swaps these
  let config = opts.config
  let address = opts.address
  let cidr = `${canonicalIp(address.ip)}/${address.prefix}`
  const notifier = createNotifier({
    scripts: config.notify,
    vip: address.cidr,
    node: opts.node,
    logger: log,
    ...(opts.commands === undefined ? {} : { commands: opts.commands }),
  })
  const ip = binary('ip')
  const arping = binary('arping')
  const na6 = binary('na6')
  let na6Missing = false

  let holding = false
  let lastState: VipState | null = null
  let stopped = false
  let stopping: Promise<void> | null = null
  let tail: Promise<unknown> = Promise.resolve()
  let garp: { run: Promise<void>; abort: AbortController } | null = null
  let variant: Promise<ArpingVariant | null> | null = null
  /** the wait of a quiesce() under way: a release ends it */
  let quiescing: AbortController | null = null
  const mono = opts.mono ?? (() => performance.now())
  /** the lease the election last reported; undefined: never told (the fence then has no timeout) */
  let leaseUntil: number | null | undefined
  let lifetimeRenewedAt = Number.NEGATIVE_INFINITY
  let lifetimeRenewing = false
  const lostListeners: ((reason: string) => void)[] = []

  const exec = (argv: string[], signal?: AbortSignal, timeoutMs = cmdTimeoutMs): Promise<CommandResult> => {
    const full = opts.netns === undefined ? argv : [ip, 'netns', 'exec', opts.netns, ...argv]
    return runCommand(full, { timeoutMs, ...(signal ? { signal } : {}) })
  }
  const shown = (argv: string[]) => argv.map((a) => (a === ip ? 'ip' : a)).join(' ')
  const failed = (argv: string[], r: CommandResult, timeoutMs = cmdTimeoutMs) =>
    new Error(`'${shown(argv)}' failed: ${describeFailure(r, timeoutMs)}`)
  const synBlock = createSynBlock({
    iface,
    node: opts.node,
    nft: binary('nft'),
    exec: (argv) => exec(argv),
    timeoutMs: cmdTimeoutMs,
    logger: log,
    ...(opts.second === true ? { suffix: '_2' } : {}),
  })
  const fence = createKernelFence({
    iface,
    node: opts.node,
    nft: binary('nft'),
    exec: (argv) => exec(argv),
    wrap: (argv) => (opts.netns === undefined ? argv : [ip, 'netns', 'exec', opts.netns, ...argv]),
    timeoutMs: cmdTimeoutMs,
    logger: log,
  })
  /** what the fence element may live for now: the remaining lease less the margin; null: no lease known */
  const fenceTimeout = (): number | null =>
    leaseUntil === undefined || leaseUntil === null
      ? leaseUntil === null
        ? 0
        : null
      : leaseUntil - mono() - config.fenceMarginMs
  /** `valid_lft N preferred_lft N`, N = addressLifetimeMs in whole seconds; none when 0 */
  const lifetimeArgs = (): string[] => {
    if (config.addressLifetimeMs === 0) return []
    const s = String(Math.max(1, Math.ceil(config.addressLifetimeMs / 1_000)))
    return ['valid_lft', s, 'preferred_lft', s]
  }

  /** one address operation at a time: a release never runs while an acquire is under way */
  const serial = <T>(op: () => Promise<T>): Promise<T> => {
    const p = tail.then(op)
    tail = p.catch(() => undefined)
    return p
  }

  /** whether `target` is on the interface now (exactly this ip/prefix), and any other prefix it has there */
  const present = async (
    target: { ip: string; cidr: string },
    signal?: AbortSignal,
  ): Promise<{ exact: boolean; other: string[] }> => {
    const argv = [ip, '-o', 'addr', 'show', 'dev', iface]
    const r = await exec(argv, signal)
    if (r.code !== 0) throw failed(argv, r)
    const mine = parseAddrShow(r.stdout).filter((a) => a.startsWith(`${canonicalIp(target.ip)}/`))
    return { exact: mine.includes(target.cidr), other: mine.filter((a) => a !== target.cidr) }
  }

  /** after a failed command the address may or may not be there: ask; if that fails too, nothing changed */
  const recheck = async () => {
    try {
      holding = (await present({ ip: address.ip, cidr })).exact
    } catch {
      // the interface is gone or `ip` does not answer: keep what we knew
    }
  }

  const addArgv = (a: VipAddress, c: string, verb: 'add' | 'change' = 'add') => [
    ip,
    'addr',
    verb,
    c,
    'dev',
    iface,
    ...(a.family === 'ipv6' ? ['nodad'] : []),
    ...lifetimeArgs(),
  ]

  /** the fence goes up before the address, so the address is never there unfenced */
  const armFence = async (a: VipAddress) => {
    if (config.fence) await fence.arm(a, fenceTimeout())
  }

  /** a live edit of `fence` or `addressLifetimeMs` on a held VIP (in the serial queue) */
  const applyFenceSettings = async (prev: VipConfig, next: VipConfig) => {
    if (prev.fence && !next.fence) await fence.remove(address)
    if (!prev.fence && next.fence) await armFence(address)
    if (prev.addressLifetimeMs !== next.addressLifetimeMs) {
      // 0: the address stays until removed again
      const forever = ['valid_lft', 'forever', 'preferred_lft', 'forever']
      const argv = [...addArgv(address, cidr, 'change'), ...(next.addressLifetimeMs === 0 ? forever : [])]
      const r = await exec(argv)
      if (r.code === 0) lifetimeRenewedAt = mono()
      else
        log.warn(
          { code: 'VIP_COMMAND_FAILED', err: failed(argv, r).message },
          'cannot change the VIP address lifetime',
        )
    }
  }

  /** renews the address lifetime; in the serial queue, so it never re-adds an address a release removed */
  const renewLifetime = () => {
    if (config.addressLifetimeMs === 0 || lifetimeRenewing) return
    if (mono() - lifetimeRenewedAt < config.addressLifetimeMs / 3) return
    lifetimeRenewing = true
    void serial(async () => {
      if (!holding || stopped) return
      // `ip addr change` would add an address that is gone: only renew one that is there
      const there = await present({ ip: address.ip, cidr }).catch(() => null)
      if (there === null || !there.exact) {
        holding = false
        const reason =
          there === null ? `cannot list the addresses of ${iface}` : `${cidr} is gone from ${iface}`
        log.error(
          { code: 'VIP_ADDRESS_LOST', vip: cidr, iface, reason },
          'the VIP address was lost while MASTER',
        )
        for (const l of lostListeners) l(reason)
        return
      }
      const argv = addArgv(address, cidr, 'change')
      const r = await exec(argv)
      if (r.code === 0) lifetimeRenewedAt = mono()
      else
        log.warn(
          { code: 'VIP_COMMAND_FAILED', err: failed(argv, r).message },
          'cannot renew the VIP address lifetime',
        )
    }).finally(() => {
      lifetimeRenewing = false
    })
  }

  const acquire = async (signal?: AbortSignal) => {
    if (signal?.aborted) throw new Error(`acquiring VIP ${cidr} aborted`)
    // a block a failed release left must not outlive it: this node accepts on the VIP again
    await synBlock.remove()
    await armFence(address)
    const argv = addArgv(address, cidr)
    const r = await exec(argv, signal)
    const present_ = r.code !== 0 && r.code !== null && ADD_PRESENT.test(r.stderr)
    if (r.code === 0 || present_) {
      // already there (a failed release): the lifetime is set anew
      if (present_ && config.addressLifetimeMs > 0) await exec(addArgv(address, cidr, 'change'), signal)
      lifetimeRenewedAt = mono()
      if (!holding) log.info({ vip: cidr, iface, fenced: config.fence && fence.available }, 'VIP acquired')
      holding = true
      return
    }
    await recheck()
    throw failed(argv, r)
  }

  /** `ip addr del`; true if the address is gone (or was not there) */
  const del = async (c: string): Promise<{ ok: true } | { ok: false; error: Error }> => {
    const argv = [ip, 'addr', 'del', c, 'dev', iface]
    const r = await exec(argv)
    if (r.code === 0 || (r.code !== null && DEL_ABSENT.test(r.stderr))) return { ok: true }
    return { ok: false, error: failed(argv, r) }
  }

  /** never aborted: a VIP left behind is worse than a slow release (the command timeout bounds it) */
  const release = async () => {
    quiescing?.abort()
    const r = await del(cidr)
    if (r.ok) {
      if (holding) log.info({ vip: cidr, iface }, 'VIP released')
      holding = false
      // only now: a SYN that reached us while the address was still here was dropped, not refused
      await synBlock.remove()
      await fence.remove(address)
      return
    }
    // the address stays: at least the host stops answering for it
    await fence.revoke()
    await recheck()
    throw r.error
  }

  const detectArping = (): Promise<ArpingVariant | null> => {
    variant ??= exec([arping, '-h'], undefined, 2_000).then((r) => {
      if (r.spawnError !== null) {
        variant = null
        log.warn({ reason: r.spawnError }, 'arping not found: no gratuitous ARP')
        return null
      }
      return /habets/i.test(r.stdout + r.stderr) ? 'habets' : 'iputils'
    })
    return variant
  }

  const garpArgv = (v: ArpingVariant): { argv: string[]; timeoutMs: number } => {
    const count = config.garpCount
    const intervalMs = Math.max(1, config.garpIntervalMs)
    if (v === 'habets') {
      // -S: without it the ARP carries the interface's primary address, not the VIP
      const deadlineS = (count * intervalMs + 1_000) / 1_000
      return {
        argv: [
          arping,
          '-U',
          '-c',
          String(count),
          '-W',
          String(intervalMs / 1_000),
          '-w',
          String(deadlineS),
          '-i',
          iface,
          '-S',
          address.ip,
          address.ip,
        ],
        timeoutMs: deadlineS * 1_000 + 2_000,
      }
    }
    // iputils sends one probe a second; -U makes the sender address the VIP itself
    return {
      argv: [arping, '-U', '-c', String(count), '-w', String(count), '-I', iface, address.ip],
      timeoutMs: count * 1_000 + 2_000,
    }
  }

  const sendGarp = () => {
    if (config.garpCount === 0 || !holding) return
    if (garp !== null) {
      log.debug({ vip: cidr }, 'gratuitous ARP already under way')
      return
    }
    const abort = new AbortController()
    const vip = cidr
    const run = (async () => {
      if (address.family === 'ipv6') return sendUnsolicitedNa(vip, abort.signal)
      const v = await detectArping()
      if (v === null || abort.signal.aborted) return
      const { argv, timeoutMs } = garpArgv(v)
      const r = await exec(argv, abort.signal, timeoutMs)
      if (abort.signal.aborted) return
      const sent = arpsSent(r.stdout)
      if (r.code === 0 || (sent !== null && sent > 0)) {
        log.debug({ vip, iface, sent }, 'gratuitous ARP sent')
      } else {
        log.warn(
          { vip, iface, exitCode: r.code, reason: describeFailure(r, timeoutMs) },
          'gratuitous ARP failed',
        )
      }
    })()
      .catch((e: unknown) => log.warn({ vip, err: String(e) }, 'gratuitous ARP failed'))
      .finally(() => {
        if (garp?.run === run) garp = null
      })
    garp = { run, abort }
  }

  /**
   * IPv6 has no ARP: unsolicited neighbour advertisements (override flag, our link-layer address)
   * to all nodes, through `na6` (Debian package ipv6toolkit; arping does not do IPv6, and the
   * kernel sends one only after duplicate address detection, which would delay the VIP by 1 s).
   */
  const sendUnsolicitedNa = async (vip: string, signal: AbortSignal) => {
    const target = address.ip
    const argv = [na6, '-i', iface, '-s', target, '-d', 'ff02::1', '-t', target, '-o', '-e']
    for (let i = 0; i < config.garpCount && !signal.aborted; i++) {
      if (i > 0) await sleep(Math.max(1, config.garpIntervalMs), undefined, { signal }).catch(() => undefined)
      if (signal.aborted) return
      const r = await exec(argv, signal, 2_000)
      if (r.spawnError !== null) {
        if (!na6Missing)
          log.warn(
            { vip, reason: r.spawnError },
            'na6 not found (Debian package ipv6toolkit): no unsolicited neighbour advertisement for the IPv6 VIP',
          )
        na6Missing = true
        return
      }
      if (r.code !== 0) {
        log.warn(
          { vip, iface, reason: describeFailure(r, 2_000) },
          'unsolicited neighbour advertisement failed',
        )
        return
      }
    }
    log.debug({ vip, iface, sent: config.garpCount }, 'unsolicited neighbour advertisements sent')
  }

  const stopGarp = async () => {
    const g = garp
    if (g === null) return
    g.abort.abort()
    await g.run
  }

  const enter = (state: VipState, signal?: AbortSignal): Promise<void> => {
    if (stopped && state === 'MASTER')
      return Promise.reject(new Error('VIP driver stopped: cannot enter MASTER'))
    return serial(async () => {
      if (state === 'MASTER') {
        await acquire(signal)
        lastState = state
        sendGarp()
        notifier.notify(state)
        return
      }
      lastState = state
      try {
        await stopGarp()
        await release()
      } finally {
        notifier.notify(state)
      }
    })
  }

  /** Waits until no session goes through `vipIp`, at least QUIESCE_SETTLE_MS and at most drainMs; returns how many are left. */
  const drainSessions = async (vipIp: string, drainMs: number, signal: AbortSignal): Promise<number> => {
    const started = performance.now()
    const settleUntil = started + Math.min(QUIESCE_SETTLE_MS, drainMs)
    const deadline = started + drainMs
    for (;;) {
      const left = opts.sessionsTo?.(vipIp) ?? 0
      const now = performance.now()
      if (signal.aborted || now >= deadline || (left === 0 && now >= settleUntil)) return left
      try {
        await sleep(Math.min(QUIESCE_POLL_MS, deadline - now), undefined, { signal })
      } catch {
        // aborted: the VIP was released, or the caller gave up
      }
    }
  }

  const quiesce = async (signal?: AbortSignal): Promise<void> => {
    if (stopped || signal?.aborted) return
    const blocked = await serial(async () => {
      // not holding, or already quiesced (maintenance did, then the election's release asks again)
      if (!holding || synBlock.active) return null
      const ok = await synBlock.add(address.ip, address.family)
      return ok ? { ip: address.ip, cidr, drainMs: config.drainMs } : null
    }).catch(() => null)
    // no block (nft missing, or not holding): today's behaviour, the release goes ahead at once
    if (blocked === null) return
    const abort = new AbortController()
    quiescing?.abort()
    quiescing = abort
    const started = performance.now()
    log.info(
      { vip: blocked.cidr, drainMs: blocked.drainMs, sessions: opts.sessionsTo?.(blocked.ip) ?? null },
      'handing the VIP over: new connections to it are dropped (clients retry), waiting for its sessions',
    )
    const left = await drainSessions(
      blocked.ip,
      blocked.drainMs,
      signal === undefined ? abort.signal : AbortSignal.any([signal, abort.signal]),
    )
    if (quiescing === abort) quiescing = null
    const waitedMs = Math.round(performance.now() - started)
    if (left === 0) log.info({ vip: blocked.cidr, waitedMs }, 'no session through the VIP left')
    else
      log.warn(
        { vip: blocked.cidr, waitedMs, sessions: left },
        'hand-over time is up: sessions through the VIP remain',
      )
  }

  /** live config change: same address → swap settings; a new one → add, announce, remove the old */
  const reconfigure = (next: VipConfig, signal?: AbortSignal): Promise<void> =>
    serial(async () => {
      if (next.driver !== 'linux' || next.address === undefined) {
        log.warn(
          { driver: next.driver, running: 'linux' },
          'vip.driver changed: applies at the next restart; the running driver keeps its settings',
        )
        return
      }
      const changed = changedFields(config, next)
      if (next.secondAddress !== undefined && opts.second !== true) {
        log.warn(
          { secondAddress: next.secondAddress.cidr },
          'vip.secondAddress added: applies at the next restart',
        )
      }
      const to = next.address
      const toCidr = `${canonicalIp(to.ip)}/${to.prefix}`
      const from = { address, cidr }
      const sameIp = canonicalIp(to.ip) === canonicalIp(from.address.ip)
      const prev = config
      config = next
      if (toCidr === from.cidr || !holding) {
        // nothing held, or the same address: the interface is not touched (sessions do not notice)
        address = to
        cidr = toCidr
        notifier.update(next.notify, to.cidr)
        if (holding) await applyFenceSettings(prev, next)
        if (changed.length > 0) log.info({ vip: cidr, changed, held: holding }, 'VIP settings changed')
        return
      }
      notifier.update(next.notify, from.address.cidr)
      if (sameIp) {
        // a new prefix for the same IP: the kernel (IPv6) would take the add as a duplicate, so
        // the old one goes first; sessions survive the moment without it (TCP retransmits)
        const d = await del(from.cidr)
        if (!d.ok) throw d.error
      }
      await armFence(to)
      const argv = addArgv(to, toCidr)
      const r = await exec(argv, signal)
      if (r.code !== 0 && !(r.code !== null && ADD_PRESENT.test(r.stderr))) {
        // the old address stays (put back if its prefix was removed above)
        if (sameIp) await acquire().catch(() => undefined)
        throw failed(argv, r)
      }
      await stopGarp()
      address = to
      cidr = toCidr
      notifier.update(next.notify, to.cidr)
      sendGarp()
      log.info({ vip: cidr, from: from.cidr, changed }, 'VIP moved to its new address on this MASTER')
      // a quiesce under way was for the old address
      quiescing?.abort()
      if (!sameIp) {
        const d = await del(from.cidr)
        if (d.ok) await fence.remove(from.address)
        if (!d.ok) {
          log.error(
            { code: 'VIP_COMMAND_FAILED', vip: from.cidr, err: d.error.message },
            'could not remove the old VIP address',
          )
        } else if (!(await present({ ip: to.ip, cidr }).catch(() => ({ exact: true }))).exact) {
          // the old address was the primary one of its subnet on this interface, and the kernel
          // (promote_secondaries off) took the new one, its secondary, with it
          log.warn(
            { vip: cidr, from: from.cidr, iface },
            'the new VIP went with the old one (net.ipv4.conf.*.promote_secondaries is off): adding it again',
          )
          holding = false
          await stopGarp()
          await acquire()
          sendGarp()
        }
      }
      await synBlock.remove()
      // as a new MASTER would: the scripts learn the new PGMESH_VIP
      if (lastState === 'MASTER') notifier.notify('MASTER')
    })

  return {
    kind: 'linux',
    start(signal) {
      return serial(async () => {
        // a predecessor killed while handing the VIP over left its nftables table
        await synBlock.remove(true)
        const stale = await fence.removeLeftovers()
        if (stale.length > 0) log.warn({ tables: stale }, 'removed the VIP fence a previous run left')
        if (config.fence && !stopped) fence.warm()
        const { exact, other } = await present({ ip: address.ip, cidr }, signal)
        if (other.length > 0) {
          log.warn(
            { vip: cidr, iface, found: other },
            'the VIP address is on the interface with another prefix; left alone',
          )
        }
        if (exact) {
          log.warn({ vip: cidr, iface }, 'removing the VIP a previous run left on the interface')
          holding = true
          await release()
        }
        holding = false
      })
    },
    enter,
    announce() {
      sendGarp()
    },
    holds: () => holding,
    lease(until) {
      leaseUntil = until
      if (!holding || stopped) return
      if (config.fence && fenceTimeout() !== null) fence.renew(() => fenceTimeout() ?? 0)
      if (until !== null) renewLifetime()
    },
    onLost(listener) {
      lostListeners.push(listener)
    },
    reconfigure,
    quiesce,
    unquiesce() {
      quiescing?.abort()
      return serial(() => synBlock.remove())
    },
    stop() {
      if (stopping !== null) return stopping
      stopped = true
      stopping = (async () => {
        // a stopped node holds nothing; Keepalived runs notify_stop on shutdown
        if (lastState !== 'STOP' && (lastState !== null || holding)) {
          await enter('STOP').catch((e: unknown) =>
            log.error(
              { vip: cidr, err: e instanceof Error ? e.message : String(e) },
              'could not release the VIP on stop',
            ),
          )
        }
        await serial(async () => {
          await stopGarp()
          if (!holding) await synBlock.remove()
        })
        fence.close()
        await notifier.stop()
      })()
      return stopping
    },
  }
}

/** The `cluster.vip` fields that differ, for the log. */
function changedFields(a: VipConfig, b: VipConfig): string[] {
  const out: string[] = []
  if (a.address?.cidr !== b.address?.cidr) out.push('address')
  for (const k of [
    'garpCount',
    'garpIntervalMs',
    'drainMs',
    'fence',
    'fenceMarginMs',
    'addressLifetimeMs',
  ] as const)
    if (a[k] !== b[k]) out.push(k)
  if (JSON.stringify(a.notify) !== JSON.stringify(b.notify)) out.push('notify')
  return out
}
