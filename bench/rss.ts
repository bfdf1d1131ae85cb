import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Memory of a process from /proc/<pid>/status, in KiB; null when unavailable (not Linux, or the process is gone). */
export interface ProcMemory {
  /** Peak resident set size (high-water mark) since the process started. */
  vmHWMKb: number;
  /** Current resident set size. */
  vmRSSKb: number;
}

export function readProcMemory(pid: number): ProcMemory | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const field = (name: string): number | null => {
    const m = new RegExp(`^${name}:\\s+(\\d+)\\s+kB`, 'm').exec(text);
    return m?.[1] === undefined ? null : Number(m[1]);
  };
  const hwm = field('VmHWM');
  const rss = field('VmRSS');
  return hwm === null || rss === null ? null : { vmHWMKb: hwm, vmRSSKb: rss };
}

let clockTicks: number | null = null;

function ticksPerSecond(): number {
  if (clockTicks === null) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** User + system CPU time a process has used so far, in milliseconds (from /proc/<pid>/stat); null when unavailable. */
export function readProcCpuMs(pid: number): number | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15 (1-based).
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  return ((utime + stime) * 1000) / ticksPerSecond();
}

/** CPU time of this (the bench) process, user + system, in milliseconds. */
export function selfCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}
