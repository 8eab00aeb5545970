/**
 * The NAT-PMP driver (RFC 6886): the external-address request probes, gives
 * the public IP and the epoch; a UDP map request creates, renews and (with
 * lifetime 0 and external port 0, §3.4) deletes the mapping. Answers count
 * only from the gateway's port 5351 and only for our internal port.
 */
import { decodeNatPmpResponse, encodeNatPmpAddressRequest, encodeNatPmpMapRequest, natPmpResultText, NatPmpResult, type NatPmpResponse } from '../../wire/natpmp.js';
import { EpochTracker } from './epoch.js';
import type { GatewaySocket} from './gateway-socket.js';
import { type ExchangeTiming } from './gateway-socket.js';
import type { CheckResult, DriverContext, MapDriver, MapRequest, MapResult } from './driver.js';

type AddressAnswer = Extract<NatPmpResponse, { kind: 'address' }>;
type MapAnswer = Extract<NatPmpResponse, { kind: 'map' }>;

export class NatPmpClient implements MapDriver {
  readonly protocol = 'natpmp' as const;
  private readonly epoch = new EpochTracker();
  private externalIp: string | null = null;

  constructor(private readonly sock: GatewaySocket, private readonly ctx: DriverContext) {}

  private address(): Promise<AddressAnswer | null> {
    return this.sock.request(encodeNatPmpAddressRequest(), (m) => {
      const d = decodeNatPmpResponse(m);
      if (d?.kind === 'address') return d;
      this.ctx.count('natpmp_bad');
      return undefined;
    }, this.ctx.timing);
  }

  async probe(): Promise<boolean> {
    const a = await this.address();
    if (!a || a.result !== NatPmpResult.SUCCESS) return false;
    this.epoch.observe(a.epoch, this.ctx.now());
    this.externalIp = a.externalIp;
    return true;
  }

  private exchange(r: MapRequest, lifetime: number, externalPort: number, timing: ExchangeTiming): Promise<MapAnswer | null> {
    const req = encodeNatPmpMapRequest({ protocol: 'udp', internalPort: r.internalPort, suggestedExternalPort: externalPort, lifetime });
    return this.sock.request(req, (m) => {
      const d = decodeNatPmpResponse(m);
      if (d?.kind !== 'map' || d.protocol !== 'udp') {
        this.ctx.count('natpmp_bad');
        return undefined;
      }
      if (d.result === NatPmpResult.SUCCESS && d.internalPort !== r.internalPort) {
        this.ctx.count('natpmp_other_mapping');
        return undefined;
      }
      return d;
    }, timing);
  }

  async map(r: MapRequest): Promise<MapResult> {
    let reset = false;
    if (this.externalIp === null) {
      const a = await this.address();
      if (!a) return { ok: false, error: 'no answer' };
      if (a.result !== NatPmpResult.SUCCESS) return { ok: false, error: natPmpResultText(a.result) };
      reset = !this.epoch.observe(a.epoch, this.ctx.now());
      this.externalIp = a.externalIp;
    }
    const d = await this.exchange(r, r.lifetimeSec, r.suggestedExternalPort, this.ctx.timing);
    if (!d) return { ok: false, error: 'no answer' };
    reset = !this.epoch.observe(d.epoch, this.ctx.now()) || reset;
    if (d.result !== NatPmpResult.SUCCESS) return { ok: false, error: natPmpResultText(d.result) };
    return { ok: true, grant: { externalIp: this.externalIp, externalPort: d.externalPort, lifetimeSec: d.lifetime, gatewayReset: reset } };
  }

  async check(): Promise<CheckResult> {
    const a = await this.address();
    if (!a || a.result !== NatPmpResult.SUCCESS) return 'unknown';
    const changed = a.externalIp !== this.externalIp;
    this.externalIp = a.externalIp;
    return this.epoch.observe(a.epoch, this.ctx.now()) && !changed ? 'ok' : 'lost';
  }

  async unmap(r: MapRequest, _externalPort: number, timing: ExchangeTiming): Promise<void> {
    await this.exchange(r, 0, 0, timing);
  }

  close(): void {
    this.sock.close();
  }
}
