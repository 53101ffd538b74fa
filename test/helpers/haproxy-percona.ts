import type { ChildProcess } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Sandbox } from './processes.js'
import type { Testbed } from './testbed.js'

/**
 * HAProxy 2.6 in front of the testbed with the Percona reference config for Patroni: an HTTP check
 * on Patroni's /primary, `inter 3s fall 3 rise 2 on-marked-down shutdown-sessions`. The yardstick
 * the benchmarks measure pgmesh against; started in the sandbox, killed by its cleanup.
 */
export async function startHaproxyPercona(sb: Sandbox, tb: Testbed, port: number): Promise<ChildProcess> {
  const file = join(sb.dir, 'haproxy.cfg')
  await writeFile(
    file,
    [
      'global',
      '  maxconn 4000',
      'defaults',
      '  mode tcp',
      '  timeout connect 4s',
      '  timeout client 30m',
      '  timeout server 30m',
      '  timeout check 5s',
      'listen primary',
      `  bind 127.0.0.1:${port}`,
      '  option httpchk OPTIONS /primary',
      '  http-check expect status 200',
      '  default-server inter 3s fall 3 rise 2 on-marked-down shutdown-sessions',
      ...tb.nodes.map(
        (n) => `  server ${n.name} 127.0.0.1:${n.pgPort} maxconn 100 check port ${new URL(n.apiUrl).port}`,
      ),
      '',
    ].join('\n'),
  )
  return sb.spawnCommand('haproxy', ['-db', '-f', file], 'haproxy.log')
}
