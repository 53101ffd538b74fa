import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { err, ok, pgmeshError, type Result } from '@pgmesh/protocol'

export interface NodeIdentity {
  readonly privateKey: PrivateKey
  /** strictly greater than any incarnation this data dir has used before */
  readonly incarnation: number
}

async function writeAtomic(file: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`
  await writeFile(tmp, data, { mode: 0o600 })
  await rename(tmp, file)
}

/**
 * Loads (or creates) the node key, so the peer id survives restarts, and bumps the incarnation
 * counter, so peers can tell a restarted node from stale messages of its previous life.
 */
export async function loadNodeIdentity(dataDir: string, now: number): Promise<Result<NodeIdentity>> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  const keyFile = join(dataDir, 'node.key')
  let privateKey: PrivateKey
  try {
    privateKey = privateKeyFromProtobuf(await readFile(keyFile))
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      return err(
        pgmeshError(
          'NODE_KEY_INVALID',
          `${keyFile} is not a valid node key; move it away to create a new one`,
        ),
      )
    }
    privateKey = await generateKeyPair('Ed25519')
    await writeAtomic(keyFile, privateKeyToProtobuf(privateKey))
  }

  const incFile = join(dataDir, 'incarnation')
  let previous = 0
  try {
    previous = Number.parseInt(await readFile(incFile, 'utf8'), 10) || 0
  } catch {
    previous = 0
  }
  // A wall-clock floor keeps incarnations rising even when the data dir is wiped between restarts.
  const incarnation = Math.max(previous + 1, Math.floor(now / 1000))
  await writeAtomic(incFile, `${incarnation}\n`)
  return ok({ privateKey, incarnation })
}
