/** Node-only crypto pieces (bots, tests, the bench). */
export { FileCryptoStore } from './store-file.js';
