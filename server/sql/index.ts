/**
 * Every store over one database, created once by the master and handed to the scheduler, the routes
 * and `submitJob`: nothing else prepares SQL.
 */
import type { Db } from '../db.js';
import { createAttemptStore } from './attempt-store.js';
import { createJobStore } from './job-store.js';
import { createOutputStore } from './output-store.js';
import { createTaskStore } from './task-store.js';
import { createTrustStore } from './trust-store.js';
import { createVolunteerStore } from './volunteer-store.js';

export function createStores(db: Db) {
  return {
    jobs: createJobStore(db),
    tasks: createTaskStore(db),
    attempts: createAttemptStore(db),
    outputs: createOutputStore(db),
    volunteers: createVolunteerStore(db),
    trust: createTrustStore(db),
    /** Runs `fn` in one immediate transaction (a savepoint inside one already open). */
    transaction: <T>(fn: () => T): T => db.transaction(fn).immediate(),
  };
}
export type Stores = ReturnType<typeof createStores>;
