/**
 * Where the LocalAPI lives on disk: the default unix socket that `warrend` listens
 * on and the `warren` CLI connects to (both take `--socket PATH` to change it).
 */

/** The default LocalAPI socket; its directory is created 0755, the socket is 0600. */
export const DEFAULT_SOCKET = '/run/warren/warrend.sock';

/** Environment variable that overrides DEFAULT_SOCKET for the CLI (`--socket` wins). */
export const SOCKET_ENV = 'WARREN_SOCKET';
