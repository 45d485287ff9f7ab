import { Counter, Gauge, type Registry } from 'prom-client';

/** Relay metrics on /metrics (docs/operator-guide.md): counts only, never a request's content. */
export interface RelayMetrics {
  reservations: Gauge;
  reservationEvents: Counter<'event'>;
  bytes: Counter<'direction'>;
  forwarded: Counter;
  refusals: Counter<'code'>;
  /** This server's own reservation on the relay it uses: 1 while held. */
  ownReservation: Gauge<'relay'>;
}

export function createRelayMetrics(registry: Registry): RelayMetrics {
  return {
    reservations: new Gauge({
      name: 'parley_relay_reservations',
      help: 'Reservations held on this relay now',
      registers: [registry],
    }),
    reservationEvents: new Counter({
      name: 'parley_relay_reservation_events_total',
      help: 'Reservations on this relay: reserved, renewed, closed',
      labelNames: ['event'],
      registers: [registry],
    }),
    bytes: new Counter({
      name: 'parley_relay_bytes_total',
      help: 'Body bytes carried by this relay, by direction (request: to the reserved server, response: back)',
      labelNames: ['direction'],
      registers: [registry],
    }),
    forwarded: new Counter({
      name: 'parley_relay_forwarded_requests_total',
      help: 'Requests this relay carried to reserved servers',
      registers: [registry],
    }),
    refusals: new Counter({
      name: 'parley_relay_refusals_total',
      help: 'Reservations and forwarded requests refused, by errcode',
      labelNames: ['code'],
      registers: [registry],
    }),
    ownReservation: new Gauge({
      name: 'parley_relay_own_reservation',
      help: 'Whether this server holds its reservation on the relay it uses (relay.use): 1 held, 0 not',
      labelNames: ['relay'],
      registers: [registry],
    }),
  };
}
