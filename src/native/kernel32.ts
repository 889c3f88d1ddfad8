import { LockDriverError } from '../shared/errors.js';
import { requireFfi } from './ffi.js';

/**
 * The kernel32/ntdll calls of the Windows driver, through ffi-rs. Loaded
 * lazily, once per thread (the waiter worker loads its own copy). Handles
 * travel as plain numbers: they are small integers, valid in every thread
 * of the process.
 */

export const WAIT_OBJECT_0 = 0;
export const WAIT_ABANDONED = 0x80;
export const WAIT_TIMEOUT = 0x102;
export const WAIT_FAILED = 0xffffffff;
/** WaitForSingleObject's "no time-out". */
export const INFINITE = 0xffffffff;
export const ERROR_FILE_NOT_FOUND = 2;
export const ERROR_ACCESS_DENIED = 5;
export const ERROR_INVALID_HANDLE = 6;

const SYNCHRONIZE = 0x0010_0000;
const MUTANT_QUERY_STATE = 0x0001;
const PROCESS_QUERY_LIMITED_INFORMATION = 0x1000;
/** MUTANT_INFORMATION_CLASS.MutantBasicInformation */
const MUTANT_BASIC_INFORMATION = 0;

export interface HandleResult {
  /** 0 on failure. */
  handle: number;
  /** GetLastError() right after the call (only meaningful when `handle` is 0). */
  error: number;
}

export interface Kernel32 {
  /** CreateMutexW(NULL, FALSE, name): opens the mutex, creating it if needed, without taking it. */
  createMutex(name: string): HandleResult;
  /** OpenMutexW(SYNCHRONIZE | MUTANT_QUERY_STATE): an existing mutex only (error 2 when there is none). */
  openMutex(name: string): HandleResult;
  /** WaitForSingleObject: WAIT_OBJECT_0, WAIT_ABANDONED, WAIT_TIMEOUT or WAIT_FAILED. */
  wait(handle: number, ms: number): number;
  /** WaitForMultipleObjects(count, handles, FALSE, ms) over handles packed as 64-bit values. */
  waitAny(handles: Buffer, ms: number): number;
  /** WaitForMultipleObjects(count, handles, TRUE, ms): all of them at once (at most 64), or none. */
  waitAll(handles: Buffer, ms: number): number;
  /** ReleaseMutex: false when this thread does not own it. */
  releaseMutex(handle: number): boolean;
  closeHandle(handle: number): void;
  /** A manual-reset event, initially unset. */
  createEvent(): number;
  setEvent(handle: number): void;
  resetEvent(handle: number): void;
  /** GetLastError() of the last failed call on this thread, as ffi-rs captured it. */
  lastError(): number;
  /**
   * The mutex's state without touching it (NtQueryMutant): its count (1 =
   * free, <= 0 = owned) and whether the calling thread owns it; undefined
   * when the call is unavailable.
   */
  mutexState(handle: number): { count: number; ownedByCaller: boolean } | undefined;
  /** The creation time of `pid` (100 ns units since 1601), undefined when it cannot be read. */
  processCreationTime(pid: number): string | undefined;
}

let kernel32: Kernel32 | undefined;

type Ffi = typeof import('ffi-rs');
type Functions = ReturnType<typeof define>;

/** The native calls, or a LockDriverError (ERR_DRIVER_UNAVAILABLE) saying why they cannot load. */
export function loadKernel32(): Kernel32 {
  if (kernel32 !== undefined) return kernel32;
  let ffi: Ffi;
  let k: Functions;
  try {
    ffi = requireFfi();
    ffi.open({ library: 'kernel32', path: 'kernel32.dll' });
    ffi.open({ library: 'ntdll', path: 'ntdll.dll' });
    k = define(ffi);
  } catch (error) {
    throw new LockDriverError(
      'ERR_DRIVER_UNAVAILABLE',
      `The named-mutex binding (ffi-rs, kernel32) cannot load on ${process.platform}-${process.arch}: ${(error as Error).message}. Use driver: 'portable'.`,
      error
    );
  }
  kernel32 = { ...objectCalls(k), ...queries(ffi, k) };
  return kernel32;
}

/** Mutexes, events, waits and handles; `lastError` is the last failure's GetLastError. */
function objectCalls(k: Functions): Omit<Kernel32, 'mutexState' | 'processCreationTime'> {
  let lastError = 0;
  const handle = (result: { value: number; errnoCode: number }): HandleResult => {
    if (result.value === 0) lastError = result.errnoCode;
    return { handle: result.value, error: result.value === 0 ? result.errnoCode : 0 };
  };
  const waited = (result: { value: number; errnoCode: number }): number => {
    if (result.value === WAIT_FAILED) lastError = result.errnoCode;
    return result.value;
  };
  return {
    createMutex: (name) => handle(k.CreateMutexW([0, 0, name])),
    openMutex: (name) => handle(k.OpenMutexW([SYNCHRONIZE | MUTANT_QUERY_STATE, 0, name])),
    wait: (h, ms) => waited(k.WaitForSingleObject([h, ms])),
    waitAny: (handles, ms) => waited(k.WaitForMultipleObjects([handles.length / 8, handles, 0, ms])),
    waitAll: (handles, ms) => waited(k.WaitForMultipleObjects([handles.length / 8, handles, 1, ms])),
    releaseMutex(h) {
      const result = k.ReleaseMutex([h]);
      if (result.value === 0) lastError = result.errnoCode;
      return result.value !== 0;
    },
    closeHandle: (h) => void k.CloseHandle([h]),
    createEvent() {
      const h = k.CreateEventW([0, 1, 0, 0]);
      if (h === 0) throw new LockDriverError('ERR_DRIVER_UNAVAILABLE', 'CreateEventW failed: cannot wait for a named mutex.');
      return h;
    },
    setEvent: (h) => void k.SetEvent([h]),
    resetEvent: (h) => void k.ResetEvent([h]),
    lastError: () => lastError,
  };
}

/** Calls that answer through out-parameters: heap cells owned by ffi-rs, made once per thread and read back with restorePointer. */
function queries(ffi: Ffi, k: Functions): Pick<Kernel32, 'mutexState' | 'processCreationTime'> {
  const { DataType } = ffi;
  const cell = (): unknown => ffi.createPointer({ paramsType: [DataType.BigInt], paramsValue: [0n] })[0];
  const read = (pointer: unknown): bigint => BigInt(ffi.restorePointer({ retType: [DataType.BigInt], paramsValue: [pointer as never] })[0]);
  let mutantInfo: unknown;
  let times: unknown[] | undefined;
  return {
    mutexState(h) {
      try {
        mutantInfo ??= cell();
        if (k.NtQueryMutant([h, MUTANT_BASIC_INFORMATION, mutantInfo, 8, 0]) !== 0) return undefined;
        // MUTANT_BASIC_INFORMATION { LONG CurrentCount; BOOLEAN OwnedByCaller; BOOLEAN AbandonedState; }
        const info = read(mutantInfo);
        return { count: Number(BigInt.asIntN(32, info)), ownedByCaller: ((info >> 32n) & 0xffn) !== 0n };
      } catch {
        return undefined; // ntdll without NtQueryMutant: callers fall back to a probe
      }
    },
    processCreationTime(pid) {
      const process = k.OpenProcess([PROCESS_QUERY_LIMITED_INFORMATION, 0, pid]);
      if (process.value === 0) return undefined;
      try {
        times ??= [cell(), cell(), cell(), cell()];
        if (k.GetProcessTimes([process.value, ...times]) === 0) return undefined;
        return read(times[0]).toString();
      } finally {
        k.CloseHandle([process.value]);
      }
    },
  };
}

function define(ffi: typeof import('ffi-rs')) {
  const { DataType } = ffi;
  const HANDLE = DataType.I64;
  return ffi.define({
    CreateMutexW: { library: 'kernel32', retType: HANDLE, paramsType: [DataType.I64, DataType.I32, DataType.WString], errno: true },
    OpenMutexW: { library: 'kernel32', retType: HANDLE, paramsType: [DataType.U32, DataType.I32, DataType.WString], errno: true },
    WaitForSingleObject: { library: 'kernel32', retType: DataType.U32, paramsType: [HANDLE, DataType.U32], errno: true },
    WaitForMultipleObjects: {
      library: 'kernel32',
      retType: DataType.U32,
      paramsType: [DataType.U32, DataType.U8Array, DataType.I32, DataType.U32],
      errno: true,
    },
    ReleaseMutex: { library: 'kernel32', retType: DataType.I32, paramsType: [HANDLE], errno: true },
    CloseHandle: { library: 'kernel32', retType: DataType.I32, paramsType: [HANDLE] },
    CreateEventW: { library: 'kernel32', retType: HANDLE, paramsType: [DataType.I64, DataType.I32, DataType.I32, DataType.I64] },
    SetEvent: { library: 'kernel32', retType: DataType.I32, paramsType: [HANDLE] },
    ResetEvent: { library: 'kernel32', retType: DataType.I32, paramsType: [HANDLE] },
    OpenProcess: { library: 'kernel32', retType: HANDLE, paramsType: [DataType.U32, DataType.I32, DataType.U32], errno: true },
    GetProcessTimes: {
      library: 'kernel32',
      retType: DataType.I32,
      paramsType: [HANDLE, DataType.External, DataType.External, DataType.External, DataType.External],
    },
    NtQueryMutant: {
      library: 'ntdll',
      retType: DataType.I32,
      paramsType: [HANDLE, DataType.I32, DataType.External, DataType.U32, DataType.I64],
    },
  });
}
