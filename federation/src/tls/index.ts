export {
  type CertificateOptions,
  certificateHost,
  DEFAULT_CERTIFICATE_DAYS,
  fingerprintOfDer,
  fingerprintOfPem,
  generateSelfSignedCertificate,
  type TlsCertificate,
} from './certificate.js';
export { CERT_FILE, KEY_FILE, loadOrCreateTlsCertificate, type StoredTlsCertificate, type StoreOptions } from './store.js';
