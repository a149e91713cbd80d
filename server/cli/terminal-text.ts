/**
 * Text from elsewhere made safe for the admin's terminal. Volunteers choose their agent string and
 * the message and stack of every failure they report; printed as they are, escape sequences in them
 * would clear the screen, retitle the window, or overwrite a line with a fake verdict (`\r`).
 */

/**
 * Escape sequences whole, so their parameters go too: CSI (`ESC [` or 8-bit 0x9B, up to a final
 * byte), strings (OSC, DCS, SOS, PM, APC, 7- or 8-bit, up to BEL or ST, or to the next ESC when
 * unterminated), and the short `ESC x` forms (reset, charset, cursor save).
 */
const ESCAPE_SEQUENCE =
  /(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?|\x1b[ -/]*[0-~]/g;
/** What is left that a terminal acts on: C0 (newline and tab apart), DEL, C1, bidi overrides. */
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;

/**
 * `text` without escape sequences or control characters. Multi-line (a stack) keeps its newlines
 * (`\r\n` becomes `\n`) and tabs; one line (a table cell, a one-line reason) turns them into spaces.
 */
export function stripControls(text: string, { multiline = false } = {}): string {
  const plain = text.replace(ESCAPE_SEQUENCE, '');
  const lines = multiline ? plain.replace(/\r\n/g, '\n') : plain.replace(/[\r\n\t]+/g, ' ');
  return lines.replace(CONTROL, '');
}

/**
 * JSON for stdout. JSON.stringify escapes C0 but leaves DEL, C1 and bidi overrides raw, and a
 * terminal acts on C1 (0x9B is CSI). Those can only sit inside strings, so escaping them as \uXXXX
 * keeps the JSON identical to every parser and inert on a terminal.
 */
export function jsonText(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(
    /[\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
