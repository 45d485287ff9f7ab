import type { AdminJob } from '@parley/schemas';
import { defineStore } from 'pinia';
import { ref } from 'vue';
import { useSessionStore } from './session.js';

const POLL_MS = 500;

/** Long admin actions (room shutdown, imports, deactivation) followed until they finish. */
export const useJobsStore = defineStore('jobs', () => {
  const jobs = ref<Record<string, AdminJob & { label: string }>>({});

  /** Follows a job, resolving with its final state. */
  async function follow(job: AdminJob, label: string): Promise<AdminJob> {
    const api = useSessionStore().api;
    jobs.value[job.id] = { ...job, label };
    let current = job;
    while (current.state === 'running') {
      await new Promise((r) => setTimeout(r, POLL_MS));
      try {
        current = await api.job(job.id);
      } catch {
        break;
      }
      jobs.value[job.id] = { ...current, label };
    }
    return current;
  }

  function dismiss(id: string): void {
    delete jobs.value[id];
  }

  return { jobs, follow, dismiss };
});
