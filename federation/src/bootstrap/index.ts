export { type AddOutcome, AddressBook, type AddressBookOptions, AnnounceLimiter, type BookEntry, type Collision } from './address-book.js';
export {
  type BuildDescriptorParams,
  buildDescriptor,
  DESCRIPTOR_CLOCK_SKEW_MS,
  type DescriptorCheck,
  descriptorKeyIds,
  verifyDescriptor,
} from './descriptor.js';
export { networkGroup } from './group.js';
