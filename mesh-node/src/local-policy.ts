import {
  type ClusterConfig,
  CommandAllowance,
  checkClusterAgainstLocal,
  type NodeLocalPolicy,
  type Result,
} from '@pgmesh/protocol'
import type { CommandGate } from './run-command.js'

/**
 * This node's allowances (node.allow and its own file's cluster section) as the node's parts use
 * them: the config applier's `admit`, the exec checks' and notify scripts' `CommandGate`. One
 * object for all of them, so a reload (SIGHUP: a new file) changes every part at once.
 */
export class LocalPolicy implements CommandGate {
  #policy: NodeLocalPolicy
  #commands: CommandAllowance

  constructor(policy: NodeLocalPolicy) {
    this.#policy = policy
    this.#commands = new CommandAllowance(policy)
  }

  /** the allowances from a re-read config file; versions already running are not re-checked */
  set(policy: NodeLocalPolicy): void {
    this.#policy = policy
    this.#commands = new CommandAllowance(policy)
  }

  /** CONFIG_NOT_ALLOWED with every refused program and address, or ok */
  admit(cluster: ClusterConfig): Result<void> {
    return checkClusterAgainstLocal(cluster, this.#policy)
  }

  allows(argv: readonly string[]): boolean {
    return this.#commands.allows(argv)
  }

  refusal(argv: readonly string[]): string {
    return this.#commands.refusal(argv)
  }
}
