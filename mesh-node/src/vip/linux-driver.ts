import { existsSync } from 'node:fs'
import type { VipAddress, VipConfig } from '@pgmesh/protocol'
import type { Logger } from '../log.js'
import { type CommandResult, describeFailure, runCommand } from '../run-command.js'
import { createNotifier } from './notifier.js'
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
}

const DEFAULT_COMMAND_TIMEOUT_MS = 5_000
const ADD_PRESENT = /File exists|already assigned/i
const DEL_ABSENT = /Cannot assign requested address|Address not found/i

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
 * asks `arping -h` which one is installed). Notify scripts run as with the exec driver.
 */
export function createLinuxDriver(opts: LinuxDriverOptions): VipDriver {
  const { address, iface, config } = opts
  const log = opts.logger
  const cmdTimeoutMs = opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS
  const cidr = `${canonicalIp(address.ip)}/${address.prefix}`
  const notifier = createNotifier({ scripts: config.notify, vip: address.cidr, node: opts.node, logger: log })
  const ip = binary('ip')
  const arping = binary('arping')

  let holding = false
  let lastState: VipState | null = null
  let stopped = false
  let stopping: Promise<void> | null = null
  let tail: Promise<unknown> = Promise.resolve()
  let garp: { run: Promise<void>; abort: AbortController } | null = null
  let variant: Promise<ArpingVariant | null> | null = null

  const exec = (argv: string[], signal?: AbortSignal, timeoutMs = cmdTimeoutMs): Promise<CommandResult> => {
    const full = opts.netns === undefined ? argv : [ip, 'netns', 'exec', opts.netns, ...argv]
    return runCommand(full, { timeoutMs, ...(signal ? { signal } : {}) })
  }
  const shown = (argv: string[]) => argv.map((a) => (a === ip ? 'ip' : a)).join(' ')
  const failed = (argv: string[], r: CommandResult, timeoutMs = cmdTimeoutMs) =>
    new Error(`'${shown(argv)}' failed: ${describeFailure(r, timeoutMs)}`)

  /** one address operation at a time: a release never runs while an acquire is under way */
  const serial = <T>(op: () => Promise<T>): Promise<T> => {
    const p = tail.then(op)
    tail = p.catch(() => undefined)
    return p
  }

  /** whether the VIP is on the interface now (exactly this ip/prefix), and any other prefix it has there */
  const present = async (signal?: AbortSignal): Promise<{ exact: boolean; other: string[] }> => {
    const argv = [ip, '-o', 'addr', 'show', 'dev', iface]
    const r = await exec(argv, signal)
    if (r.code !== 0) throw failed(argv, r)
    const mine = parseAddrShow(r.stdout).filter((a) => a.startsWith(`${canonicalIp(address.ip)}/`))
    return { exact: mine.includes(cidr), other: mine.filter((a) => a !== cidr) }
  }

  /** after a failed command the address may or may not be there: ask; if that fails too, nothing changed */
  const recheck = async () => {
    try {
      holding = (await present()).exact
    } catch {
      // the interface is gone or `ip` does not answer: keep what we knew
    }
  }

  const acquire = async (signal?: AbortSignal) => {
    if (signal?.aborted) throw new Error(`acquiring VIP ${cidr} aborted`)
    const argv = [ip, 'addr', 'add', cidr, 'dev', iface, ...(address.family === 'ipv6' ? ['nodad'] : [])]
    const r = await exec(argv, signal)
    if (r.code === 0 || (r.code !== null && ADD_PRESENT.test(r.stderr))) {
      if (!holding) log.info({ vip: cidr, iface }, 'VIP acquired')
      holding = true
      return
    }
    await recheck()
    throw failed(argv, r)
  }

  /** never aborted: a VIP left behind is worse than a slow release (the command timeout bounds it) */
  const release = async () => {
    const argv = [ip, 'addr', 'del', cidr, 'dev', iface]
    const r = await exec(argv)
    if (r.code === 0 || (r.code !== null && DEL_ABSENT.test(r.stderr))) {
      if (holding) log.info({ vip: cidr, iface }, 'VIP released')
      holding = false
      return
    }
    await recheck()
    throw failed(argv, r)
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
    if (address.family === 'ipv6') {
      log.debug({ vip: cidr }, 'no gratuitous ARP for an IPv6 VIP')
      return
    }
    if (garp !== null) {
      log.debug({ vip: cidr }, 'gratuitous ARP already under way')
      return
    }
    const abort = new AbortController()
    const run = (async () => {
      const v = await detectArping()
      if (v === null || abort.signal.aborted) return
      const { argv, timeoutMs } = garpArgv(v)
      const r = await exec(argv, abort.signal, timeoutMs)
      if (abort.signal.aborted) return
      const sent = arpsSent(r.stdout)
      if (r.code === 0 || (sent !== null && sent > 0)) {
        log.debug({ vip: cidr, iface, sent }, 'gratuitous ARP sent')
      } else {
        log.warn(
          { vip: cidr, iface, exitCode: r.code, reason: describeFailure(r, timeoutMs) },
          'gratuitous ARP failed',
        )
      }
    })()
      .catch((e: unknown) => log.warn({ vip: cidr, err: String(e) }, 'gratuitous ARP failed'))
      .finally(() => {
        if (garp?.run === run) garp = null
      })
    garp = { run, abort }
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

  return {
    kind: 'linux',
    start(signal) {
      return serial(async () => {
        const { exact, other } = await present(signal)
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
        await serial(stopGarp)
        await notifier.stop()
      })()
      return stopping
    },
  }
}
