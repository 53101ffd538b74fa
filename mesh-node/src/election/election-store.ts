import { join } from 'node:path'
import { ok, type Result, VoterConfigSchema } from '@pgmesh/protocol'
import { z } from 'zod'
import { readStateFile, writeStateFile } from '../json-file.js'
import type { PersistedElection } from './types.js'

/** The file the election keeps its term, vote and voters in (Raft's "persistent state"). */
export const ElectionFileSchema = z
  .object({
    term: z.number().int().min(0),
    votedFor: z.string().nullable(),
    voters: VoterConfigSchema.nullable(),
    /** the longest lease promise that may still run: the quiet time after a restart */
    promiseMs: z.number().int().min(0).max(3_600_000).optional(),
  })
  .strict()

export interface ElectionStore {
  load(): Promise<Result<PersistedElection | null>>
  /** resolves once the state is on disk (fsync): a vote must never be forgotten by a crash */
  save(state: PersistedElection): Promise<void>
}

export function fileElectionStore(dataDir: string): ElectionStore {
  const file = join(dataDir, 'election.json')
  return {
    load: () =>
      readStateFile(
        file,
        ElectionFileSchema,
        'ELECTION_STATE_INVALID',
        "if this node is stopped on every peer's side, move it away to rejoin as a new voter",
      ),
    save: (state) => writeStateFile(file, state),
  }
}

/** For tests and `vip.driver: none` labs that run without a data dir. */
export function memoryElectionStore(): ElectionStore & { saved: PersistedElection | null } {
  const store = {
    saved: null as PersistedElection | null,
    async load() {
      return ok(store.saved)
    },
    async save(s: PersistedElection) {
      store.saved = s
    },
  }
  return store
}
