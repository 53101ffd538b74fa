import { join } from 'node:path'
import { ConfigHashSchema, ok, type Result, VersionedConfigSchema } from '@pgmesh/protocol'
import { z } from 'zod'
import { readStateFile, writeStateFile } from '../json-file.js'

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
  return {
    load: () =>
      readStateFile(
        file,
        StoredConfigSchema,
        'CONFIG_STATE_INVALID',
        'move it away and the node takes the cluster config from its file and the mesh',
      ),
    save: (state) => writeStateFile(file, state),
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
