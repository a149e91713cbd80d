import { parse, type Node } from 'acorn';
import { UserError } from '../shared/errors.js';
import { RECORDS_MODES } from '../shared/engine.js';
import type { RecordsMode } from '../shared/job-types.js';

interface AcornSyntaxError extends SyntaxError {
  loc?: { line: number; column: number };
}

interface NamedNode extends Node {
  id?: { name: string } | null;
  declaration?:
    (Node & { id?: { name: string }; declarations?: { id: Node & { name?: string }; init?: Node | null }[] }) | null;
  specifiers?: { exported: Node & { name?: string; value?: string }; local?: Node & { name?: string } }[];
  source?: { value: string } | null;
}

type Declarator = { id: Node & { name?: string }; init?: Node | null };

type Located = Node & { loc?: { start: { line: number } }; meta?: { name?: string } };

/**
 * The first `import(...)` or `import.meta` anywhere in the tree, in source order. Both reach for a
 * module system that a volunteer's sandbox does not give job code, so a module using them is refused
 * at submit rather than failing on every volunteer.
 */
function findRuntimeImport(program: Node): { node: Located; what: 'import()' | 'import.meta' } | null {
  let first: { node: Located; what: 'import()' | 'import.meta' } | null = null;
  const stack: unknown[] = [program];
  while (stack.length > 0) {
    const value = stack.pop();
    if (typeof value !== 'object' || value === null) continue;
    if (Array.isArray(value)) {
      for (const item of value as unknown[]) stack.push(item);
      continue;
    }
    const n = value as Located;
    const what =
      n.type === 'ImportExpression'
        ? 'import()'
        : n.type === 'MetaProperty' && n.meta?.name === 'import'
          ? 'import.meta'
          : null;
    if (what && (!first || n.start < first.node.start)) first = { node: n, what };
    for (const [key, child] of Object.entries(n)) if (key !== 'loc' && typeof child === 'object') stack.push(child);
  }
  return first;
}

/** What the check learnt of a module beyond its exports. */
export interface ModuleFacts {
  /** `export const records` when it is a literal the engine knows. */
  records?: RecordsMode;
}

/**
 * `export const records = '…'` with a literal names how `map` is called; a value no engine knows is
 * refused here, with its line, rather than failing every attempt. Other values are checked when the
 * module loads (shared/engine.ts).
 */
function checkRecords(d: Declarator, file: string, line: number | string, found: ModuleFacts) {
  if (d.id.name !== 'records' || d.init?.type !== 'Literal') return;
  const value = (d.init as Node & { value?: unknown }).value;
  if (typeof value === 'string' && (RECORDS_MODES as readonly string[]).includes(value)) {
    found.records = value as RecordsMode;
    return;
  }
  throw new UserError(`${file}:${line}: records must be 'lines' or 'splits', got ${JSON.stringify(value)}`);
}

/**
 * Checks a job module without running it: it must parse as an ES module, export `map` and
 * `reduce`, and import nothing, neither with `import` declarations nor `import()` or
 * `import.meta` anywhere (volunteers load it alone from the master, and the Node volunteer's sandbox
 * has no module loader). Throws a UserError naming the file, line and reason; returns the exported
 * names.
 */
export function checkJobModule(source: string, file: string, found: ModuleFacts = {}): Set<string> {
  if (/\.(c?ts|mts|tsx)$/.test(file)) {
    throw new UserError(
      `${file}: the master takes JavaScript; \`tabreduce submit\` compiles and bundles TypeScript unless told --no-bundle`,
    );
  }
  let program: { body: NamedNode[] };
  try {
    program = parse(source, { ecmaVersion: 'latest', sourceType: 'module', locations: true }) as unknown as {
      body: NamedNode[];
    };
  } catch (e) {
    const err = e as AcornSyntaxError;
    const where = err.loc ? `${err.loc.line}:${err.loc.column + 1}` : '?';
    const reason = err.message.replace(/\s*\(\d+:\d+\)$/, '');
    throw new UserError(`${file}:${where}: syntax error: ${reason}`);
  }
  const exported = new Set<string>();
  // Top-level `var`/`let`/`const`, for `export { records }` as bundlers write it.
  const declared = new Map<string, { d: Declarator; line: number | string }>();
  let recordsLocal: string | null = null;
  for (const node of program.body) {
    const line = (node as Node & { loc?: { start: { line: number } } }).loc?.start.line ?? '?';
    if (node.type === 'VariableDeclaration') {
      for (const d of (node as unknown as { declarations: Declarator[] }).declarations) {
        if (d.id.name) declared.set(d.id.name, { d, line });
      }
    }
    if (node.type === 'ImportDeclaration') {
      throw new UserError(
        `${file}:${line}: job modules must be self-contained, but this imports ${JSON.stringify(node.source?.value)}; bundle it into the module`,
      );
    }
    if (node.type === 'ExportAllDeclaration') {
      throw new UserError(`${file}:${line}: job modules must be self-contained: "export * from" is not allowed`);
    }
    if (node.type !== 'ExportNamedDeclaration') continue;
    if (node.source) {
      throw new UserError(
        `${file}:${line}: job modules must be self-contained: re-exports from ${JSON.stringify(node.source.value)} are not allowed`,
      );
    }
    const decl = node.declaration;
    if (decl?.id?.name) exported.add(decl.id.name);
    for (const d of decl?.declarations ?? []) {
      if (d.id.name) exported.add(d.id.name);
      checkRecords(d, file, line, found);
    }
    for (const s of node.specifiers ?? []) {
      const name = s.exported.name ?? s.exported.value;
      if (name) exported.add(name);
      if (name === 'records' && s.local?.name) recordsLocal = s.local.name;
    }
  }
  const records = recordsLocal === null ? undefined : declared.get(recordsLocal);
  if (records) checkRecords({ ...records.d, id: { ...records.d.id, name: 'records' } }, file, records.line, found);
  const runtime = findRuntimeImport(program as unknown as Node);
  if (runtime) {
    const line = runtime.node.loc?.start.line ?? '?';
    throw new UserError(
      runtime.what === 'import()'
        ? `${file}:${line}: job modules must be self-contained, but this loads code with import(); volunteers refuse it, so bundle what it loads into the module`
        : `${file}:${line}: job modules may not use import.meta; volunteers run the module without a URL or module system of its own`,
    );
  }
  const missing = ['map', 'reduce'].filter((n) => !exported.has(n));
  if (missing.length > 0) {
    const list = missing.map((n) => `"${n}"`).join(' and ');
    throw new UserError(
      `${file}: the module does not export ${list}; a job module needs \`export function map(key, value, emit)\` and \`export function reduce(key, values)\``,
    );
  }
  return exported;
}
