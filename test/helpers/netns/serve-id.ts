// A stand-in for the service behind the VIP: answers every connection with this host's name.
// usage: serve-id.ts NAME PORT
import { createServer } from 'node:net'

const [name = 'unknown', port = '5000'] = process.argv.slice(2)
createServer((s) => {
  s.on('error', () => undefined)
  s.end(`${name}\n`)
}).listen(Number(port), '0.0.0.0', () => process.stdout.write(`serving ${name} on ${port}\n`))
