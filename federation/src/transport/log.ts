/**
 * The logger the transport writes its fallback chain to: a subset of pino's API, so the
 * homeserver passes its pino child logger as is. Fields first, message second.
 */
export interface TransportLog {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export const SILENT_LOG: TransportLog = {
  debug() {},
  info() {},
  warn() {},
};
