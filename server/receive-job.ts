/**
 * `POST /api/jobs`: the multipart upload parsed as a stream (busboy), each input file written
 * straight to the blob store while its UTF-8 is checked and its splits are found, so the master holds
 * a chunk of it at a time however large it is. With `early`, the job's maps run while the rest
 * arrives (server/scheduler/upload.ts). Either the whole job goes in or nothing is left: a refused or
 * interrupted upload deletes what it stored, or has its caller delete the job it began (and a crash
 * leaves only what the next start removes: unfinished blobs, an uploading job, blobs of no job).
 */
import busboy from 'busboy';
import { basename } from 'node:path';
import type { Readable } from 'node:stream';
import { UserError, toError } from '../shared/errors.js';
import { LineNumberer, SplitFinder, type SplitRange } from '../shared/split.js';
import { blobNames, type BlobStore } from './blobs/blob-store.js';
import { Utf8Check } from './utf8-check.js';
import {
  JOB_DEFAULTS,
  JOB_LIMITS,
  checkJob,
  checkMapCount,
  inputKeys,
  parseVerify,
  type JobSpec,
  type StagedInput,
} from './submit-job.js';

/** The upload broke a size limit: answered 413. */
export class UploadTooLarge extends Error {
  override name = 'UploadTooLarge';
}

export interface ReceiveOptions {
  blobs: BlobStore;
  maxUploadBytes: number;
  /**
   * Runs the job's maps while the rest of its upload arrives (server/scheduler/upload.ts): `begin`
   * once the options, the module and the first input are in, then `input` for each input as it is
   * stored and split, the first one included. `input` answers false when the job has ended
   * meanwhile: the upload stops with JobEndedDuringUpload. Once `begin` has run, the job's data is
   * the caller's to delete if the upload fails. Inputs that come before the split size do not run
   * early, nor do any after them (map tasks are numbered in input order).
   */
  early?: {
    begin(spec: JobSpec): void;
    input(spec: JobSpec, inputs: StagedInput[], first: number): Promise<boolean>;
  };
}

/** The job ended (a map failed too often, an admin cancelled it) while its upload was arriving. */
export class JobEndedDuringUpload extends Error {
  override name = 'JobEndedDuringUpload';
}

function intField(fields: Map<string, string>, name: string, fallback: number): number {
  const raw = fields.get(name);
  if (raw === undefined || raw === '') return fallback;
  if (!/^-?\d+$/.test(raw.trim())) throw new UserError(`${name} must be a whole number`);
  return Number(raw);
}

/** Sets each split's `firstLine`, reading its blob back from the store. */
async function numberLines(blobs: BlobStore, blob: string, splits: SplitRange[]): Promise<void> {
  const numberer = new LineNumberer(splits);
  for await (const chunk of blobs.read(blob)) numberer.push(chunk as Buffer);
  numberer.end();
}

/** Splits of a stored blob, read back from the store: for a file that came before `splitSize` did. */
async function splitsOfBlob(blobs: BlobStore, blob: string, splitSize: number): Promise<SplitRange[]> {
  const finder = new SplitFinder(splitSize);
  const out: SplitRange[] = [];
  for await (const chunk of blobs.read(blob)) out.push(...finder.push(chunk as Buffer));
  out.push(...finder.end());
  return out;
}

/**
 * Reads a job upload from `body` (with its content-type) into the blob store and returns the job to
 * insert. Throws UserError for a bad request and UploadTooLarge past the limit; either way, the
 * blobs it stored are deleted.
 */
export async function receiveJob(
  body: Readable,
  contentType: string,
  id: string,
  opts: ReceiveOptions,
): Promise<JobSpec> {
  if (!contentType.startsWith('multipart/form-data')) throw new UserError('send the job as multipart/form-data');
  const { blobs, maxUploadBytes } = opts;
  const fields = new Map<string, string>();
  const inputs: (StagedInput & { known: boolean })[] = [];
  let module: { name: string; text: string } | null = null;
  let received = 0;
  let maps = 0;
  /** The job as it runs while its upload arrives, once `early.begin` has run. */
  let begun: JobSpec | null = null;
  /** Inputs and map tasks offered so far, and whether an input came that cannot be offered early. */
  let offeredInputs = 0;
  let offered = 0;
  let late = false;

  let bb: busboy.Busboy;
  try {
    bb = busboy({
      headers: { 'content-type': contentType },
      limits: { fields: 50, fieldSize: 64 * 1024, fileSize: maxUploadBytes, parts: 100_000 },
    });
  } catch (e) {
    throw new UserError(`cannot read the upload: ${toError(e).message}`);
  }

  const stageFile = async (stream: Readable, filename: string): Promise<void> => {
    const index = inputs.length;
    const name = filename || `input-${index}`;
    inputKeys([...inputs.map((i) => i.name), name]);
    const blob = blobNames.input(id, index);
    const writer = await blobs.create(blob);
    const splitSize = fields.has('splitSize') ? intField(fields, 'splitSize', JOB_DEFAULTS.splitSize) : null;
    const finder = splitSize !== null && splitSize >= JOB_LIMITS.minSplitSize ? new SplitFinder(splitSize) : null;
    const splits: SplitRange[] = [];
    const utf8 = new Utf8Check(`input ${name}`);
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        utf8.push(chunk);
        if (finder) {
          const done = finder.push(chunk);
          splits.push(...done);
          maps += done.length;
          checkMapCount(maps);
        }
        await writer.write(chunk);
      }
      if ((stream as Readable & { truncated?: boolean }).truncated) {
        throw new UploadTooLarge(`input ${name} is larger than the master's limit of ${maxUploadBytes} bytes`);
      }
      utf8.end();
      if (finder) {
        const last = finder.end();
        splits.push(...last);
        maps += last.length;
        checkMapCount(maps);
      }
      const bytes = await writer.commit();
      inputs.push({ name, blob, bytes, splits, known: finder !== null });
    } catch (e) {
      await writer.abort();
      stream.resume();
      throw e instanceof UploadTooLarge || e instanceof UserError ? e : asUserError(e);
    }
    await offerEarly();
  };

  /** Offers the newest input's maps while the rest arrives, starting the job with the first one. */
  const offerEarly = async (): Promise<void> => {
    const input = inputs[inputs.length - 1]!;
    if (!opts.early || late || !input.known || !module) {
      late = true;
      return;
    }
    if (!begun) {
      // `begin` checks the options and the module, before any input is read back for line numbers.
      const spec = specOf(inputs);
      opts.early.begin(spec);
      begun = spec;
    }
    if (begun.skipBadRecords! > 0) await numberLines(blobs, input.blob, input.splits);
    if (!(await opts.early.input(begun, [input], offered))) throw endedDuringUpload();
    offered += input.splits.length;
    offeredInputs++;
  };

  const endedDuringUpload = () => new JobEndedDuringUpload(`job ${id} ended while its input was uploading`);

  /** The job as the fields and files so far describe it. */
  const specOf = (inputs: StagedInput[]): JobSpec => {
    const name = fields.get('name');
    if (name !== undefined && name.length > 200) throw new UserError('name is longer than 200 characters');
    const mod = module as { name: string; text: string } | null;
    if (!mod) throw new UserError('missing the "module" file');
    return {
      id,
      name,
      moduleName: mod.name,
      module: mod.text,
      inputs,
      reduces: intField(fields, 'reduces', JOB_DEFAULTS.reduces),
      splitSize: intField(fields, 'splitSize', JOB_DEFAULTS.splitSize),
      taskTimeoutMs: intField(fields, 'taskTimeoutMs', JOB_DEFAULTS.taskTimeoutMs),
      maxAttempts: intField(fields, 'maxAttempts', JOB_DEFAULTS.maxAttempts),
      verify: parseVerify(fields.get('verify') ?? JOB_DEFAULTS.verify),
      skipBadRecords: intField(fields, 'skipBadRecords', JOB_DEFAULTS.skipBadRecords),
    };
  };

  const collectModule = async (stream: Readable, filename: string): Promise<void> => {
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      n += chunk.length;
      if (n > JOB_LIMITS.moduleBytes) {
        stream.resume();
        throw new UserError(`${filename || 'module'}: module is larger than ${JOB_LIMITS.moduleBytes} bytes`);
      }
      chunks.push(chunk);
    }
    module = { name: filename || 'module.js', text: Buffer.concat(chunks).toString('utf8') };
  };

  try {
    await new Promise<void>((resolve, reject) => {
      let work = Promise.resolve();
      let failed = false;
      const fail = (e: unknown) => {
        if (failed) return;
        failed = true;
        body.unpipe(bb);
        body.resume();
        reject(e);
      };
      body.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > maxUploadBytes) {
          fail(new UploadTooLarge(`upload larger than the master's limit of ${maxUploadBytes} bytes`));
        }
      });
      body.on('error', (e) => fail(new UserError(`the upload was interrupted: ${toError(e).message}`)));
      body.on('aborted', () => fail(new UserError('the upload was interrupted')));
      bb.on('file', (field, stream, info) => {
        // Files are taken one at a time, in order: busboy goes on once this one is read.
        const filename = basename(info.filename ?? '');
        work = work.then(() => {
          if (failed) return void stream.resume();
          if (field === 'module') return collectModule(stream, filename);
          if (field === 'input') return stageFile(stream, filename);
          stream.resume();
        });
        work.catch(fail);
      });
      bb.on('field', (name, value, info) => {
        if (info.valueTruncated) return fail(new UserError(`field ${name} is too long`));
        fields.set(name, value);
      });
      bb.on('partsLimit', () => fail(new UserError('too many parts in the upload')));
      bb.on('fieldsLimit', () => fail(new UserError('too many fields in the upload')));
      bb.on('error', (e) => fail(new UserError(`cannot read the upload: ${toError(e).message}`)));
      bb.on('close', () => {
        work.then(() => (failed ? undefined : resolve()), fail);
      });
      body.pipe(bb);
    });
    if (!module) throw new UserError('missing the "module" file');
    if (inputs.length === 0) throw new UserError('no "input" files');
    // A job that began early is the same job: fields that came after its first input change nothing.
    const spec: JobSpec = begun ?? specOf(inputs);
    const splitSize = spec.splitSize;
    // Files that came before the split size did are split now, read back from the store.
    if (splitSize >= JOB_LIMITS.minSplitSize) {
      for (const input of inputs) {
        if (input.known) continue;
        input.splits = await splitsOfBlob(blobs, input.blob, splitSize);
        maps += input.splits.length;
        checkMapCount(maps);
      }
    }
    // Skipped lines are reported by their line number in their file: each split's first is counted
    // now, reading the inputs back once (only for such jobs, whose map runs once per line anyway).
    if (spec.skipBadRecords! > 0) {
      checkJob(spec);
      for (const input of inputs.slice(offeredInputs)) await numberLines(blobs, input.blob, input.splits);
    }
    // Inputs that could not run early (they came before the split size, or after one that did) run now.
    if (begun && opts.early && offeredInputs < inputs.length) {
      if (!(await opts.early.input(begun, inputs.slice(offeredInputs), offered))) throw endedDuringUpload();
    }
    return spec;
  } catch (e) {
    if (!begun) await blobs.deletePrefix(blobNames.jobPrefix(id)).catch(() => {});
    throw e;
  }
}

function asUserError(e: unknown): Error {
  const err = toError(e);
  // A full disk is the operator's problem, not the submitter's: keep its code for the 507 answer.
  if ((err as NodeJS.ErrnoException).code) return err;
  return new UserError(err.message);
}

/**
 * Stores inputs that are already in memory (a program's own strings, tests) as `receiveJob` stores an
 * upload: each checked, written to its blob and split.
 */
export async function stageInputs(
  blobs: BlobStore,
  id: string,
  inputs: { name: string; bytes: Uint8Array }[],
  splitSize: number,
  /** Count each split's first line number too (a job that skips bad records). */
  numbered = false,
): Promise<StagedInput[]> {
  inputKeys(inputs.map((i) => i.name));
  const staged: StagedInput[] = [];
  for (const [index, input] of inputs.entries()) {
    const blob = blobNames.input(id, index);
    const utf8 = new Utf8Check(`input ${input.name}`);
    const finder = new SplitFinder(splitSize);
    const bytes = Buffer.from(input.bytes.buffer, input.bytes.byteOffset, input.bytes.byteLength);
    try {
      utf8.push(bytes);
      utf8.end();
    } catch (e) {
      throw new UserError(toError(e).message);
    }
    const splits = [...finder.push(bytes), ...finder.end()];
    if (numbered) {
      const numberer = new LineNumberer(splits);
      numberer.push(bytes);
      numberer.end();
    }
    const writer = await blobs.create(blob);
    await writer.write(bytes);
    staged.push({ name: input.name, blob, bytes: await writer.commit(), splits });
  }
  return staged;
}
