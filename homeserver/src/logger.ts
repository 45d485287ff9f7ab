import { type Logger, pino } from 'pino';

export type { Logger };

/**
 * JSON logs. Paths that could carry secrets are censored even if a caller logs a whole
 * object by mistake; request bodies are never logged.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'parley' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [
          'password',
          '*.password',
          'new_password',
          'old_password',
          '*.access_token',
          'access_token',
          'refresh_token',
          '*.refresh_token',
          'registration_token',
          'req.headers.authorization',
          'req.headers.cookie',
          'database.url',
          'redis.url',
        ],
        censor: '[redacted]',
      },
    },
    destination,
  );
}
