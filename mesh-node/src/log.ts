import type { LogLevel } from '@pgmesh/protocol'
import { type DestinationStream, type Logger as PinoLogger, pino } from 'pino'

export type Logger = PinoLogger

/** Root logger: JSON lines on stdout; every module logs through `logger.child({ component })`. */
export function createLogger(level: LogLevel, node: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { node },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // defence in depth: nothing named like a secret reaches a log line
      redact: { paths: ['secret', '*.secret', 'psk', '*.psk', 'token', '*.token'], censor: '[redacted]' },
    },
    destination,
  )
}

/**
 * Logs a recurring problem (a peer sending bad gossip) once per key per interval, with the number
 * of occurrences folded into the next line.
 */
export class RateLimitedLog {
  readonly #last = new Map<string, { at: number; suppressed: number }>()

  constructor(
    private readonly intervalMs: number,
    private readonly maxKeys = 1024,
  ) {}

  /** Returns the number of suppressed repeats to report, or null if this occurrence stays silent. */
  shouldLog(key: string, now: number): number | null {
    const seen = this.#last.get(key)
    if (seen !== undefined && now - seen.at < this.intervalMs) {
      seen.suppressed++
      return null
    }
    if (seen === undefined && this.#last.size >= this.maxKeys) this.#last.clear()
    const suppressed = seen?.suppressed ?? 0
    this.#last.set(key, { at: now, suppressed: 0 })
    return suppressed
  }
}
