/**
 * The shared secret between warren-control and its relays (the admission
 * stream's bearer token), read from a file both sides are given. The file
 * must not be readable by everyone and must hold at least 32 bytes of printable ASCII
 * (surrounding white space, such as a final newline, does not count).
 */
import { readFileSync, statSync } from 'node:fs';
import { MIN_RELAY_SECRET_LEN } from '../../wire/relay-admission.js';

export class SecretFileError extends Error {
  override readonly name = 'SecretFileError';
}

/** The secret in `path`; throws SecretFileError naming the flag, the file and the problem. */
export function readSecretFile(path: string, flag: string): Buffer {
  let mode: number;
  let raw: Buffer;
  try {
    mode = statSync(path).mode;
    raw = readFileSync(path);
  } catch (e) {
    throw new SecretFileError(`${flag} ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (mode & 0o004) {
    throw new SecretFileError(`${flag} ${path}: the file is readable by everyone (mode ${(mode & 0o777).toString(8).padStart(4, '0')}); run chmod 600 on it`);
  }
  const secret = Buffer.from(raw.toString('utf8').trim(), 'utf8');
  if (secret.length < MIN_RELAY_SECRET_LEN) {
    throw new SecretFileError(`${flag} ${path}: the secret is ${secret.length} bytes; it must be at least ${MIN_RELAY_SECRET_LEN} (e.g. openssl rand -hex 32 > ${path})`);
  }
  // It travels in an HTTP header: printable ASCII without spaces.
  if (!/^[\x21-\x7e]+$/.test(secret.toString('latin1'))) throw new SecretFileError(`${flag} ${path}: the secret must be one line of printable ASCII without spaces`);
  return secret;
}
