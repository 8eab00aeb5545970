/** Small shared helpers with no Warren knowledge: atomic state writes, logging. */
export * from './atomic-write.js';
export * from './log.js';
