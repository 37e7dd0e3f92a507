/** Types of bin/entry.js (plain JavaScript: the bin runs before tsx is loaded). */
export interface Entry {
  mode: 'compiled' | 'source';
  file: string;
  why: string;
}
export function chooseEntry(root: string, env?: NodeJS.ProcessEnv): Entry;
