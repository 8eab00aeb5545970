/**
 * The PCP driver (RFC 6887): ANNOUNCE to probe and to watch the epoch, MAP
 * (UDP) to create, renew (same nonce) and delete (lifetime 0) the mapping.
 * An answer counts only if it comes from the gateway's port 5351 (the socket
 * checks), decodes, and carries our nonce, protocol and internal port.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { decodePcpResponse, encodePcpAnnounceRequest, encodePcpMapRequest, isPcpUnsupportedVersion, pcpResultText, IPPROTO_UDP, PCP_NONCE_LEN, PcpOp, PcpResult, type PcpResponse } from '../../wire/pcp.js';
import { isNatPmpUnsupportedVersion } from '../../wire/natpmp.js';
import { EpochTracker } from './epoch.js';
import type { GatewaySocket} from './gateway-socket.js';
import { type ExchangeTiming } from './gateway-socket.js';
import type { CheckResult, DriverContext, MapDriver, MapRequest, MapResult } from './driver.js';

export class PcpClient implements MapDriver {
  readonly protocol = 'pcp' as const;
  readonly nonce: Uint8Array;
  private readonly epoch = new EpochTracker();

  constructor(private readonly sock: GatewaySocket, private readonly ctx: DriverContext, nonce?: Uint8Array) {
    this.nonce = nonce?.length === PCP_NONCE_LEN ? nonce : new Uint8Array(randomBytes(PCP_NONCE_LEN));
  }

  private announce(): Promise<PcpResponse | 'unsupported' | null> {
    return this.sock.request(encodePcpAnnounceRequest(this.ctx.env.local), (m) => {
      if (isNatPmpUnsupportedVersion(m) || isPcpUnsupportedVersion(m)) return 'unsupported' as const;
      const d = decodePcpResponse(m);
      if (!d || d.opcode !== PcpOp.ANNOUNCE) {
        this.ctx.count('pcp_bad');
        return undefined;
      }
      return d;
    }, this.ctx.timing);
  }

  async probe(): Promise<boolean> {
    const r = await this.announce();
    if (!r || r === 'unsupported') return false;
    this.epoch.observe(r.epoch, this.ctx.now());
    // Any PCP answer (even an error for ANNOUNCE) means the gateway speaks PCP; MAP decides the rest.
    return true;
  }

  private exchange(r: MapRequest, lifetime: number, externalPort: number, timing: ExchangeTiming): Promise<PcpResponse | null> {
    const req = encodePcpMapRequest({
      clientIp: this.ctx.env.local, lifetime, nonce: this.nonce, protocol: IPPROTO_UDP, internalPort: r.internalPort, suggestedExternalPort: externalPort,
    });
    return this.sock.request(req, (m) => {
      const d = decodePcpResponse(m);
      if (!d || d.opcode !== PcpOp.MAP || !d.map) {
        this.ctx.count('pcp_bad');
        return undefined;
      }
      if (!timingSafeEqual(d.map.nonce, this.nonce)) {
        this.ctx.count('pcp_nonce_mismatch');
        return undefined;
      }
      if (d.map.protocol !== IPPROTO_UDP || d.map.internalPort !== r.internalPort) {
        this.ctx.count('pcp_other_mapping');
        return undefined;
      }
      return d;
    }, timing);
  }

  async map(r: MapRequest): Promise<MapResult> {
    const d = await this.exchange(r, r.lifetimeSec, r.suggestedExternalPort, this.ctx.timing);
    if (!d) return { ok: false, error: 'no answer' };
    const fresh = this.epoch.observe(d.epoch, this.ctx.now());
    if (d.result !== PcpResult.SUCCESS) return { ok: false, error: pcpResultText(d.result) };
    return { ok: true, grant: { externalIp: d.map!.externalIp, externalPort: d.map!.externalPort, lifetimeSec: d.lifetime, gatewayReset: !fresh } };
  }

  async check(): Promise<CheckResult> {
    const r = await this.announce();
    if (!r || r === 'unsupported') return 'unknown';
    return this.epoch.observe(r.epoch, this.ctx.now()) ? 'ok' : 'lost';
  }

  async unmap(r: MapRequest, externalPort: number, timing: ExchangeTiming): Promise<void> {
    await this.exchange(r, 0, externalPort, timing);
  }

  close(): void {
    this.sock.close();
  }
}
