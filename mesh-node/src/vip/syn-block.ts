import { createHash } from 'node:crypto'
import type { Logger } from '../log.js'
import { type CommandResult, describeFailure } from '../run-command.js'

/**
 * Drops new TCP connections (SYN without ACK) to one address on this node, in an nftables table
 * pgmesh owns (`inet pgmesh_vip_<iface>_<hash of the node id>`), so a VIP about to be handed over
 * accepts nothing new while its sessions end: a client's dropped SYN is resent (after ~1 s) and
 * reaches the next MASTER. Established sessions and their handshakes' ACKs pass untouched.
 */
export interface SynBlock {
  /** the table this node's rule lives in */
  readonly table: string
  /** whether the rule is in place, as far as we know */
  readonly active: boolean
  /**
   * Adds (or replaces) the rule for `ip`. False when nft is missing or refuses: warned once with
   * `VIP_SYN_BLOCK_FAILED`, and the caller goes on without it (never holds up a release).
   */
  add(ip: string, family: 'ipv4' | 'ipv6'): Promise<boolean>
  /**
   * Removes the table if this block added it; `leftover`: whether or not (at start: a killed
   * predecessor's). Idempotent; a failure is logged, never thrown.
   */
  remove(leftover?: boolean): Promise<void>
}

export interface SynBlockOptions {
  readonly iface: string
  readonly node: string
  /** `nft` found on this host (a path, or the bare name) */
  readonly nft: string
  /** runs argv (inside the driver's network namespace, if any) with the command timeout */
  readonly exec: (argv: string[]) => Promise<CommandResult>
  /** the timeout `exec` applies, for the log */
  readonly timeoutMs: number
  /** already a child logger with component 'vip' */
  readonly logger: Logger
  /** appended to the table name: the second VIP of a dual-stack pair has a table of its own */
  readonly suffix?: string
}

/** `pgmesh_vip_eth0_1a2b3c4d`: readable, and two nodes on one host (tests) do not share it. */
export function synBlockTable(iface: string, node: string, suffix = ''): string {
  const hash = createHash('sha256').update(node).digest('hex').slice(0, 8)
  return `pgmesh_vip_${iface.replace(/[^A-Za-z0-9_]/g, '_')}_${hash}${suffix}`
}

/** One nft batch (applied atomically): a fresh table whose input chain drops SYNs to `ip`. */
export function synBlockScript(table: string, ip: string, family: 'ipv4' | 'ipv6'): string {
  const match = family === 'ipv4' ? 'ip daddr' : 'ip6 daddr'
  return [
    // add-then-delete: removes a table left over, without failing when there is none
    `add table inet ${table}`,
    `delete table inet ${table}`,
    `add table inet ${table}`,
    `add chain inet ${table} input { type filter hook input priority filter; policy accept; }`,
    `add rule inet ${table} input ${match} ${ip} tcp flags & (syn | ack) == syn counter drop`,
  ].join('; ')
}

/** Idempotent removal: nft has no `delete if exists` before 1.0.8 (Debian 12 ships 1.0.6). */
export function synUnblockScript(table: string): string {
  return `add table inet ${table}; delete table inet ${table}`
}

export function createSynBlock(opts: SynBlockOptions): SynBlock {
  const log = opts.logger
  const table = synBlockTable(opts.iface, opts.node, opts.suffix)
  let active = false
  let warned = false

  const warnOnce = (r: CommandResult, what: string) => {
    const fields = { code: 'VIP_SYN_BLOCK_FAILED', table, reason: describeFailure(r, opts.timeoutMs) }
    if (warned) {
      log.debug(fields, what)
      return
    }
    warned = true
    log.warn(
      fields,
      `${what}: new connections to the VIP are not held off while it is handed over (is nftables installed?)`,
    )
  }

  return {
    table,
    get active() {
      return active
    },
    async add(ip, family) {
      const r = await opts.exec([opts.nft, synBlockScript(table, ip, family)])
      if (r.code !== 0) {
        warnOnce(r, 'cannot add the nftables rule that drops new connections to the VIP')
        return false
      }
      active = true
      log.debug({ table, ip }, 'new connections to the VIP dropped')
      return true
    },
    async remove(leftover = false) {
      if (!active && !leftover) return
      const r = await opts.exec([opts.nft, synUnblockScript(table)])
      if (r.code === 0) {
        if (active) log.debug({ table }, 'new connections to the VIP accepted again')
        active = false
        return
      }
      // no nft at all: there cannot be a table either
      if (r.spawnError !== null && !active) return
      log.error(
        { code: 'VIP_SYN_BLOCK_FAILED', table, reason: describeFailure(r, opts.timeoutMs) },
        `cannot remove the nftables table ${table}: remove it by hand (nft delete table inet ${table})`,
      )
    },
  }
}
