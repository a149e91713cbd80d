/**
 * How a volunteer is called on the status page and in `tabreduce workers`: the name its visitor
 * chose, else a short label for its browser and system ("Firefox on Android") instead of a raw
 * user-agent string.
 */

/** Longest name kept, in characters: a table cell's worth. */
export const MAX_NAME_CHARS = 40;

/**
 * Control characters (C0, DEL, C1), bidirectional overrides and isolates, zero-width characters and
 * line or paragraph separators: in a name they only hide or reorder what an admin reads.
 */
const UNSEEN = /[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]/g;

/**
 * A name as the master keeps it: unseen characters gone, runs of white space made one space,
 * trimmed, and cut to `MAX_NAME_CHARS` characters (whole code points). '' when nothing is left.
 */
export function cleanVolunteerName(raw: string): string {
  // Line breaks and tabs become spaces before the unseen characters go, so "a\nb" keeps two words.
  const text = raw
    .replace(/[\t\n\v\f\r\u2028\u2029]/g, ' ')
    .replace(UNSEEN, '')
    .replace(/\s+/g, ' ')
    .trim();
  return Array.from(text).slice(0, MAX_NAME_CHARS).join('').trim();
}

const BROWSERS: [RegExp, string][] = [
  [/\bEdg(?:e|A|iOS)?\//, 'Edge'],
  [/\bOPR\//, 'Opera'],
  [/\bSamsungBrowser\//, 'Samsung Internet'],
  [/\b(?:Firefox|FxiOS)\//, 'Firefox'],
  [/\b(?:HeadlessChrome|Chrome|Chromium|CriOS)\//, 'Chrome'],
  [/\bVersion\/[\d.]+.*\bSafari\//, 'Safari'],
];

const SYSTEMS: [RegExp, string][] = [
  [/\bAndroid\b/, 'Android'],
  [/\b(?:iPhone|iPad|iPod)\b/, 'iOS'],
  [/\bCrOS\b/, 'ChromeOS'],
  [/\bWindows\b/, 'Windows'],
  [/\bMac OS X\b|\bMacintosh\b/, 'macOS'],
  [/\bLinux\b/, 'Linux'],
];

/**
 * "Chrome on Linux" for a tab (its agent is `tab ` and the browser's user agent), "Node 22" for a
 * `tabreduce volunteer`; any other agent as it came, for each display to make safe as it does now.
 */
export function agentLabel(agent: string): string {
  const node = /^tabreduce-volunteer node\/v?(\d+)/.exec(agent);
  if (node) return `Node ${node[1]}`;
  if (agent.startsWith('tab ')) {
    const browser = BROWSERS.find(([re]) => re.test(agent))?.[1] ?? 'a browser';
    const system = SYSTEMS.find(([re]) => re.test(agent))?.[1];
    return system ? `${browser} on ${system}` : browser;
  }
  return agent;
}
