import type { ChildProcess } from 'node:child_process'
import { chmod, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { NetnsLab } from './netns-lab.js'
import type { Sandbox } from './processes.js'
import { NODE_NAMES, PRIORITIES, SERVICE_PORT, VIP } from './vip-lab.js'

export interface KeepalivedTimings {
  /** VRRP advert interval, seconds (fractions need VRRPv3) */
  readonly advertInt: number
  /** vrrp_script interval, seconds */
  readonly checkInterval: number
}

/**
 * The tool pgmesh replaces, in the same lab: Keepalived 2.2 (Debian's package) in each node
 * namespace, priorities 110/105/100, a track_script on the same local service with weight -20.
 */
export class KeepalivedLab {
  readonly nodes = new Map<string, ChildProcess>()

  constructor(
    readonly sb: Sandbox,
    readonly lab: NetnsLab,
    readonly timings: KeepalivedTimings,
  ) {}

  async init(): Promise<void> {
    const check = join(this.sb.dir, 'check-service.sh')
    await writeFile(check, `#!/bin/bash\nexec timeout 1 bash -c '</dev/tcp/127.0.0.1/${SERVICE_PORT}'\n`)
    await chmod(check, 0o755)
    for (const name of NODE_NAMES) {
      const t = this.timings
      const conf = [
        'global_defs {',
        `  router_id ${name}`,
        '  script_user root',
        '  enable_script_security',
        ...(t.advertInt < 1 ? ['  vrrp_version 3'] : []),
        '}',
        'vrrp_script chk_service {',
        `  script "${check}"`,
        `  interval ${t.checkInterval}`,
        '  timeout 1',
        '  fall 2',
        '  rise 2',
        '  weight -20',
        '}',
        'vrrp_instance VI_1 {',
        '  state BACKUP',
        '  interface eth0',
        '  virtual_router_id 51',
        `  priority ${PRIORITIES[name]}`,
        `  advert_int ${t.advertInt}`,
        `  virtual_ipaddress { ${VIP}/24 }`,
        '  track_script { chk_service }',
        '}',
        '',
      ].join('\n')
      await writeFile(join(this.sb.dir, `keepalived-${name}.conf`), conf)
    }
  }

  startNode(name: string): ChildProcess {
    const d = this.sb.dir
    const p = this.sb.spawnCommand(
      'ip',
      this.lab.inside(name, [
        'keepalived',
        '--dont-fork',
        '--log-console',
        '--vrrp',
        '-f',
        join(d, `keepalived-${name}.conf`),
        '-p',
        join(d, `keepalived-${name}.pid`),
        '-r',
        join(d, `keepalived-${name}.vrrp.pid`),
        '-c',
        join(d, `keepalived-${name}.checkers.pid`),
      ]),
      `keepalived-${name}.log`,
    )
    this.nodes.set(name, p)
    return p
  }
}
