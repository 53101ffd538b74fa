import { X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createSecureContext, type SecureContext } from 'node:tls'

/** A certificate as the listener status and the metrics show it: never the key. */
export interface CertificateInfo {
  readonly subject: string
  readonly notAfter: string
  /** notAfter as epoch ms, for comparisons and metrics */
  readonly notAfterMs: number
  readonly fingerprint256: string
}

export interface ServerMaterial {
  readonly context: SecureContext
  readonly certificate: CertificateInfo
}

export interface TlsFileError {
  readonly code: 'TLS_MATERIAL_INVALID'
  readonly message: string
}

/** Reads a PEM file; the error names the file and the errno, never its contents. */
async function readPem(path: string, what: string): Promise<Buffer | TlsFileError> {
  try {
    return await readFile(path)
  } catch (e) {
    return {
      code: 'TLS_MATERIAL_INVALID',
      message: `cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
    }
  }
}

const isError = (v: unknown): v is TlsFileError =>
  typeof v === 'object' && v !== null && (v as TlsFileError).code === 'TLS_MATERIAL_INVALID'

/**
 * The certificate and key a terminating listener shows its clients, read from the node's own
 * files. The key is only ever handed to OpenSSL (createSecureContext): never kept as a string,
 * logged or returned.
 */
export async function loadServerMaterial(
  certFile: string,
  keyFile: string,
): Promise<ServerMaterial | TlsFileError> {
  const cert = await readPem(certFile, 'certificate')
  if (isError(cert)) return cert
  const key = await readPem(keyFile, 'key')
  if (isError(key)) return key
  let certificate: CertificateInfo
  try {
    const x = new X509Certificate(cert)
    certificate = {
      subject: x.subject.replaceAll('\n', ', '),
      notAfter: new Date(x.validTo).toISOString(),
      notAfterMs: new Date(x.validTo).getTime(),
      fingerprint256: x.fingerprint256,
    }
  } catch (e) {
    return {
      code: 'TLS_MATERIAL_INVALID',
      message: `${certFile} is not a PEM certificate: ${(e as Error).message}`,
    }
  }
  try {
    return { context: createSecureContext({ cert, key, minVersion: 'TLSv1.2' }), certificate }
  } catch (e) {
    // OpenSSL's message names the problem (wrong key for the certificate, bad PEM), not the key
    return { code: 'TLS_MATERIAL_INVALID', message: `${certFile} / ${keyFile}: ${(e as Error).message}` }
  }
}

/** The CA bundle the backends' certificates must chain to. */
export async function loadCa(caFile: string): Promise<Buffer | TlsFileError> {
  const ca = await readPem(caFile, 'CA bundle')
  if (isError(ca)) return ca
  try {
    createSecureContext({ ca })
  } catch (e) {
    return {
      code: 'TLS_MATERIAL_INVALID',
      message: `${caFile} is not a PEM CA bundle: ${(e as Error).message}`,
    }
  }
  return ca
}

export { isError as isTlsFileError }

/** How long until `notAfterMs`, and whether that is inside the warning window. */
export function expiryState(
  notAfterMs: number,
  wallNow: number,
  warnMs: number,
): { readonly remainingMs: number; readonly warn: boolean; readonly expired: boolean } {
  const remainingMs = notAfterMs - wallNow
  return { remainingMs, warn: remainingMs <= warnMs, expired: remainingMs <= 0 }
}
