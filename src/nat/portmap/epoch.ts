/**
 * Noticing that a NAT-PMP or PCP gateway lost its state (rebooted, restarted
 * its daemon) from the epoch time in every response (RFC 6887 §8.5, which
 * refines RFC 6886 §3.6). The server's clock and ours must move together:
 *
 *   - the server's epoch went back by more than a second, or
 *   - clientDelta + 2 < serverDelta - serverDelta/16, or
 *     serverDelta + 2 < clientDelta - clientDelta/16
 *
 * means its mappings are gone and must be re-created. Pure: times are passed in.
 */

export class EpochTracker {
  private server: number | null = null;
  private client = 0;

  /**
   * Record a response's epoch (seconds) seen at `clientMs` (our monotonic ms).
   * Returns false when the gateway lost its state since the previous response.
   */
  observe(serverEpoch: number, clientMs: number): boolean {
    const prevServer = this.server;
    const prevClient = this.client;
    this.server = serverEpoch;
    this.client = clientMs;
    if (prevServer === null) return true;
    if (serverEpoch < prevServer - 1) return false;
    const clientDelta = (clientMs - prevClient) / 1000;
    const serverDelta = serverEpoch - prevServer;
    if (clientDelta + 2 < serverDelta - serverDelta / 16) return false;
    if (serverDelta + 2 < clientDelta - clientDelta / 16) return false;
    return true;
  }

  reset(): void {
    this.server = null;
  }
}
