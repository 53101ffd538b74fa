import { randomBytes } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { err, ok, pgmeshError, type Result } from '@pgmesh/protocol'

/**
 * The cluster secret is a libp2p private-network key ("swarm key"): nodes without it cannot
 * complete a connection, so they can neither read nor publish gossip.
 */
const HEADER = '/key/swarm/psk/1.0.0/\n/base16/\n'

export function generateSecret(): string {
  return `${HEADER}${randomBytes(32).toString('hex')}\n`
}

export interface LoadedSecret {
  /** bytes in the form @libp2p/pnet expects */
  readonly psk: Uint8Array
  /** true when group or others may read the file */
  readonly looseMode: boolean
}

export function parseSecret(text: string): Result<Uint8Array> {
  const lines = text.trim().split(/\r?\n/)
  if (lines.length !== 3 || lines[0] !== '/key/swarm/psk/1.0.0/' || lines[1] !== '/base16/') {
    return err(
      pgmeshError(
        'SECRET_INVALID',
        'not a pgmesh cluster secret (create one with `pgmesh keygen --out FILE`)',
      ),
    )
  }
  if (!/^[0-9a-fA-F]{64}$/.test(lines[2]!)) {
    return err(pgmeshError('SECRET_INVALID', 'the key line must be 64 hexadecimal characters'))
  }
  return ok(new TextEncoder().encode(`${HEADER}${lines[2]!.toLowerCase()}`))
}

export async function loadSecret(file: string): Promise<Result<LoadedSecret>> {
  let text: string
  let mode: number
  try {
    ;[text, mode] = await Promise.all([readFile(file, 'utf8'), stat(file).then((s) => s.mode)])
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    return err(
      pgmeshError('SECRET_MISSING', `cannot read the cluster secret file ${file} (${code ?? 'error'})`),
    )
  }
  const parsed = parseSecret(text)
  if (!parsed.ok) return err(pgmeshError('SECRET_INVALID', `${file}: ${parsed.error.message}`))
  return ok({ psk: parsed.value, looseMode: (mode & 0o077) !== 0 })
}
