import { open, readFile, rename } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { ConfigHashSchema, err, ok, pgmeshError, type Result, VersionedConfigSchema } from '@pgmesh/protocol'
import { z } from 'zod'

/** What a node keeps of the cluster config across restarts. */
export const StoredConfigSchema = z
  .object({
    config: VersionedConfigSchema,
    /** hash of the config file's cluster section when this node last read it: a changed file is an edit */
    fileHash: ConfigHashSchema.nullable(),
  })
  .strict()
export type StoredConfig = z.infer<typeof StoredConfigSchema>

export interface ConfigStore {
  load(): Promise<Result<StoredConfig | null>>
  /** resolves once the file is on disk (fsync, then an atomic rename) */
  save(state: StoredConfig): Promise<void>
}

export function fileConfigStore(dataDir: string): ConfigStore {
  const file = join(dataDir, 'cluster-config.json')
  let saves = 0
  return {
    async load() {
      let text: string
      try {
        text = await readFile(file, 'utf8')
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return ok(null)
        return err(pgmeshError('CONFIG_STATE_INVALID', `cannot read ${file}: ${(e as Error).message}`))
      }
      try {
        const r = StoredConfigSchema.safeParse(JSON.parse(text))
        if (r.success) return ok(r.data)
      } catch {
        // fall through: not JSON
      }
      return err(
        pgmeshError(
          'CONFIG_STATE_INVALID',
          `${file} is damaged; move it away and the node takes the cluster config from its file and the mesh`,
        ),
      )
    },
    async save(state) {
      const tmp = `${file}.tmp-${process.pid}-${++saves}`
      const fh = await open(tmp, 'w', 0o600)
      try {
        await fh.writeFile(`${JSON.stringify(state)}\n`)
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
    },
  }
}

export function memoryConfigStore(
  initial: StoredConfig | null = null,
): ConfigStore & { saved: StoredConfig | null } {
  const s = {
    saved: initial,
    load: async () => ok(s.saved),
    save: async (state: StoredConfig) => {
      s.saved = state
    },
  }
  return s
}
