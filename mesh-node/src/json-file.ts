import { open, readFile, rename } from 'node:fs/promises'
import { dirname } from 'node:path'
import { type ErrorCode, err, ok, pgmeshError, type Result } from '@pgmesh/protocol'
import type { z } from 'zod'

/**
 * A small JSON state file in the data dir: null when absent, an error with `code` when unreadable
 * or not matching `schema` (`damaged` tells the operator what to do).
 */
export async function readStateFile<T>(
  file: string,
  schema: z.ZodType<T>,
  code: ErrorCode,
  damaged: string,
): Promise<Result<T | null>> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return ok(null)
    return err(pgmeshError(code, `cannot read ${file}: ${(e as Error).message}`))
  }
  try {
    const r = schema.safeParse(JSON.parse(text))
    if (r.success) return ok(r.data)
  } catch {
    // fall through: not JSON
  }
  return err(pgmeshError(code, `${file} is damaged; ${damaged}`))
}

let writes = 0

/**
 * Replaces the file so that a crash leaves either the old or the new content: a temp file (unique
 * per write, so overlapping writes cannot rename each other's), fsync, rename, fsync of the dir.
 */
export async function writeStateFile(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${++writes}`
  const fh = await open(tmp, 'w', 0o600)
  try {
    await fh.writeFile(`${JSON.stringify(value)}\n`)
    await fh.sync()
  } finally {
    await fh.close()
  }
  await rename(tmp, file)
  const dir = await open(dirname(file), 'r')
  try {
    await dir.sync()
  } finally {
    await dir.close()
  }
}
