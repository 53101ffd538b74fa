/**
 * What an import could not carry over, or carried over with a change the operator should know:
 * `unmapped` = the directive has no pgmesh counterpart here and was left out; `review` = the
 * output needs the operator's eye (a value pgmesh cannot know, or a behaviour that differs).
 */
export interface ImportNote {
  readonly source: 'haproxy' | 'keepalived'
  readonly kind: 'unmapped' | 'review'
  /** 1-based line in the source file; 0 when the note is about the file as a whole */
  readonly line: number
  /** the directive as written (its words), empty for whole-file notes */
  readonly directive: string
  readonly reason: string
}

export const FILE_NAMES = { haproxy: 'haproxy.cfg', keepalived: 'keepalived.conf' } as const

/** Notes in file order: haproxy.cfg first, then keepalived.conf, each by line. */
export function sortNotes(notes: readonly ImportNote[]): ImportNote[] {
  const rank = (n: ImportNote) => (n.source === 'haproxy' ? 0 : 1)
  return [...notes].sort((a, b) => rank(a) - rank(b) || a.line - b.line)
}

/** The report as text: one line per note, `file:line  directive  — reason`. */
export function formatReport(
  notes: readonly ImportNote[],
  files: Partial<Record<'haproxy' | 'keepalived', string>> = {},
): string {
  const sorted = sortNotes(notes)
  if (sorted.length === 0) return 'every directive was carried over\n'
  const lines = sorted.map((n) => {
    const file = files[n.source] ?? FILE_NAMES[n.source]
    const where = n.line === 0 ? file : `${file}:${n.line}`
    const what = n.directive === '' ? '' : ` ${n.directive}`
    return `${n.kind === 'review' ? 'REVIEW  ' : 'UNMAPPED'} ${where}${what}\n         ${n.reason}`
  })
  return `${lines.join('\n')}\n`
}
