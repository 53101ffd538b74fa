import { type Shell, SUBCOMMANDS } from './args.js'

/** Options that take a file or directory: completion offers paths after them. */
const PATH_OPTIONS = new Set(['config', 'secret-file', 'tokens-file', 'data-dir', 'token-file', 'out'])

/**
 * A completion script generated from the subcommand table, so it cannot drift from the parser:
 * commands, their actions (config get|apply|check) and their --flags; paths after path options
 * and for FILE arguments.
 */
export function completionScript(shell: Shell): string {
  const cases = SUBCOMMANDS.map((c) => {
    const flags = Object.keys(c.options)
      .map((o) => `--${o}`)
      .join(' ')
    const actions = (c.actions ?? []).join(' ')
    return `    ${c.name}) actions="${actions}"; flags="${flags} --help" ;;`
  }).join('\n')
  const pathFlags = [...PATH_OPTIONS].map((o) => `--${o}`).join('|')
  const bash = `# pgmesh completion for bash (pgmesh completion bash)
_pgmesh() {
  local cur prev cmd actions flags
  cur=\${COMP_WORDS[COMP_CWORD]}
  prev=\${COMP_WORDS[COMP_CWORD-1]}
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "${SUBCOMMANDS.map((c) => c.name).join(' ')} --help --version" -- "$cur"))
    return
  fi
  cmd=\${COMP_WORDS[1]}
  case "$cmd" in
${cases}
    *) return ;;
  esac
  case "$prev" in
    ${pathFlags}) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --log-level) COMPREPLY=($(compgen -W "fatal error warn info debug trace silent" -- "$cur")); return ;;
  esac
  if [ "$COMP_CWORD" -eq 2 ] && [ -n "$actions" ] && [[ "$cur" != -* ]]; then
    COMPREPLY=($(compgen -W "$actions" -- "$cur"))
  elif [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}
complete -o filenames -F _pgmesh pgmesh
`
  return shell === 'bash' ? bash : `autoload -U +X bashcompinit && bashcompinit\n${bash}`
}
