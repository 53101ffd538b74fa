import { z } from 'zod'
import { isIPv4, isIPv6 } from './address.js'
import { ms } from './ids.js'

/** `198.18.0.100/24` or `fd00::100/64`: the address and the prefix it is added with. */
export const VipAddressSchema = z.string().transform((s, ctx) => {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(s)
  const ip = m?.[1] ?? ''
  const prefix = Number(m?.[2])
  const v4 = isIPv4(ip)
  if (m === null || !(v4 || isIPv6(ip)) || prefix > (v4 ? 32 : 128)) {
    ctx.addIssue({ code: 'custom', message: `'${s}' is not an address with a prefix, like 198.18.0.100/24` })
    return z.NEVER
  }
  return { ip, prefix, family: v4 ? ('ipv4' as const) : ('ipv6' as const), cidr: `${ip}/${prefix}` }
})
export type VipAddress = z.output<typeof VipAddressSchema>

const Argv = z.array(z.string().min(1)).min(1).max(64)

/**
 * Keepalived-style notify scripts (argv, no shell), run on every state change with PGMESH_STATE,
 * PGMESH_VIP and PGMESH_NODE in the environment. A script that fails or outlives `timeoutMs` is
 * logged and killed; it never holds up the election.
 */
export const NotifyScriptsSchema = z
  .object({
    master: Argv.optional(),
    backup: Argv.optional(),
    fault: Argv.optional(),
    stop: Argv.optional(),
    /** a script still running after this long is killed (SIGKILL). Default 10000 */
    timeoutMs: ms(10_000, 10, 600_000),
  })
  .strict()
export type NotifyScripts = z.infer<typeof NotifyScriptsSchema>

/**
 * The virtual IP the MASTER holds. `linux`: `ip addr add/del` on `node.vip.interface` plus
 * gratuitous ARP; `exec`: the notify scripts move it (a cloud IP, say); `none`: no address, the
 * MASTER is only recorded (`GET /master` answers 200 on it alone).
 */
export const VipConfigSchema = z
  .object({
    address: VipAddressSchema.optional(),
    /**
     * `linux`: a second VIP of the other family (a dual-stack pair, e.g. `fd00::100/64` beside
     * `198.18.0.100/24`), held, fenced, announced and released together with `address`. Adding or
     * removing it applies at the next restart; changing it applies live
     */
    secondAddress: VipAddressSchema.optional(),
    driver: z.enum(['linux', 'exec', 'none']).default('none'),
    /** gratuitous ARPs (`arping -U`) sent on acquiring the VIP and after a partition heals. Default 3 */
    garpCount: z.number().int().min(0).max(100).default(3),
    /** Default 10 */
    garpIntervalMs: ms(10, 0, 10_000),
    /**
     * `linux`, before a maintenance hand-over: new TCP connections to the VIP are no longer
     * accepted on this node (an nftables rule drops their SYNs; clients resend them after ~1 s and
     * reach the next MASTER), and the sessions through the VIP get up to this long to end (the
     * wait is at least min(100 ms, drainMs), for handshakes under way) before the address is
     * removed. Below the 1 s SYN retransmission, the first resent SYN already finds the next
     * MASTER. 0: the address goes at once. Default 500
     */
    drainMs: ms(500, 0, 60_000),
    /**
     * `linux`: the kernel fence. While this node is MASTER, an nftables table of its own lets the
     * host answer ARP / neighbour discovery for the VIP and accept packets to it only while a set
     * element whose timeout is the remaining lease lives; every lease renewal refreshes it. A
     * killed, paused or cut-off MASTER stops answering for the VIP when its lease runs out, with no
     * action of its own. Without nft the node warns (`VIP_FENCE_UNAVAILABLE`) and runs unfenced.
     * Default true
     */
    fence: z.boolean().default(true),
    /**
     * `linux`: the fence element's timeout is the remaining lease minus this much (the time a
     * renewal takes to reach the kernel). Default 10
     */
    fenceMarginMs: ms(10, 0, 1_000),
    /**
     * `linux`: the VIP is added with this lifetime (`valid_lft`, rounded up to whole seconds) and
     * the MASTER renews it every third of it: the kernel removes the address of a process that died
     * without removing it. 0: no lifetime (the address stays until removed). Default 3000
     */
    addressLifetimeMs: ms(3_000, 0, 3_600_000),
    /** `linux`/`exec`: a failed VIP acquire is retried after this long, doubling each time. Default 100 */
    acquireRetryMs: ms(100, 10, 60_000),
    /** the longest wait between two acquire attempts. Default 1000 */
    acquireRetryMaxMs: ms(1_000, 10, 600_000),
    /**
     * acquire attempts (the first included) before the MASTER gives up: it goes FAULT (the failing
     * check `pgmesh:vip`) and hands MASTER over. Default 4
     */
    acquireAttempts: z.number().int().min(1).max(100).default(4),
    /** how long a node that gave up on acquiring the VIP stays FAULT before it is eligible again. Default 10000 */
    acquireFaultMs: ms(10_000, 0, 3_600_000),
    notify: NotifyScriptsSchema.prefault({}),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.driver === 'linux' && v.address === undefined) {
      ctx.addIssue({ code: 'custom', path: ['address'], message: 'the linux driver needs the VIP address' })
    }
    if (v.secondAddress !== undefined) {
      if (v.address === undefined) {
        ctx.addIssue({ code: 'custom', path: ['secondAddress'], message: 'a second VIP needs `address` too' })
      } else if (v.secondAddress.family === v.address.family) {
        ctx.addIssue({
          code: 'custom',
          path: ['secondAddress'],
          message: `must be of the other family than address (${v.address.family}): a dual-stack pair`,
        })
      }
      if (v.driver !== 'linux') {
        ctx.addIssue({
          code: 'custom',
          path: ['secondAddress'],
          message: 'only the linux driver holds a second VIP',
        })
      }
    }
  })
export type VipConfig = z.infer<typeof VipConfigSchema>
export type VipConfigInput = z.input<typeof VipConfigSchema>

/** Node-local VIP settings. */
export const NodeVipSchema = z
  .object({
    /** the interface the linux driver adds the VIP to */
    interface: z
      .string()
      .regex(/^[A-Za-z0-9_.:@-]{1,15}$/, 'must be an interface name (1-15 characters)')
      .optional(),
  })
  .strict()
