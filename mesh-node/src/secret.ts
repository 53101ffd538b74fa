import { randomBytes } from 'node:crypto'
import { open } from 'node:fs/promises'
import { err, ok, type PgmeshError, pgmeshError, type Result } from '@pgmesh/protocol'

/** Largest secret or token file read: both are a few lines. */
const PRIVATE_FILE_MAX_BYTES = 65_536

/**
 * Reads a file that must be private to its owner (the cluster secret, the API tokens): refused
 * with FILE_MODE_UNSAFE when group or others have any permission on it, since whoever can read it
 * is a member of the mesh (or an operator). The mode is taken from the opened file itself.
 */
export async function readPrivateFile(
  file: string,
): Promise<Result<string, PgmeshError | NodeJS.ErrnoException>> {
  let handle: Awaited<ReturnType<typeof open>> | undefined
  try {
    handle = await open(file, 'r')
    const st = await handle.stat()
    if ((st.mode & 0o077) !== 0) {
      const mode = (st.mode & 0o777).toString(8).padStart(4, '0')
      return err(
        pgmeshError(
          'FILE_MODE_UNSAFE',
          `${file} is open to group or others (mode ${mode}); run \`chmod 600 ${file}\` (and chown it to the user pgmesh runs as)`,
        ),
      )
    }
    if (st.size > PRIVATE_FILE_MAX_BYTES) {
      return err(Object.assign(new Error(`larger than ${PRIVATE_FILE_MAX_BYTES} bytes`), { code: 'EFBIG' }))
    }
    return ok(await handle.readFile('utf8'))
  } catch (e) {
    return err(e as NodeJS.ErrnoException)
  } finally {
    await handle?.close().catch(() => undefined)
  }
}

export const isPgmeshError = (e: PgmeshError | NodeJS.ErrnoException): e is PgmeshError =>
  typeof (e as PgmeshError).code === 'string' && !(e instanceof Error)

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
  const read = await readPrivateFile(file)
  if (!read.ok) {
    if (isPgmeshError(read.error)) return err(read.error)
    return err(
      pgmeshError(
        'SECRET_MISSING',
        `cannot read the cluster secret file ${file} (${read.error.code ?? read.error.message})`,
      ),
    )
  }
  const parsed = parseSecret(read.value)
  if (!parsed.ok) return err(pgmeshError('SECRET_INVALID', `${file}: ${parsed.error.message}`))
  return ok({ psk: parsed.value })
}
