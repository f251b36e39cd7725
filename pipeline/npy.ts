/**
 * Raw maps are saved as NumPy .npy (version 1.0, little-endian float32, C order), so anyone can
 * load them with `numpy.load` or any npy reader and check the numbers outside the report.
 */
export function encodeNpy(data: Float32Array, shape: readonly number[]): Uint8Array {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new Error(`npy: shape [${shape}] holds ${count} values, data has ${data.length}`);
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const preamble = 10;
  const pad = 64 - ((preamble + header.length + 1) % 64);
  header = header + ' '.repeat(pad % 64) + '\n';
  const out = new Uint8Array(preamble + header.length + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), preamble);
  const body = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] === 1) out.set(body, preamble + header.length);
  else {
    const view = new DataView(out.buffer, preamble + header.length);
    data.forEach((v, i) => view.setFloat32(i * 4, v, true));
  }
  return out;
}

/** Reads an .npy written by encodeNpy (float32, little-endian, C order). */
export function decodeNpy(bytes: Uint8Array): { data: Float32Array; shape: number[] } {
  const headerLen = new DataView(bytes.buffer, bytes.byteOffset).getUint16(8, true);
  const header = new TextDecoder().decode(bytes.subarray(10, 10 + headerLen));
  if (!header.includes("'<f4'")) throw new Error(`npy: only little-endian float32 is supported, header ${header.trim()}`);
  const m = /'shape': \(([^)]*)\)/.exec(header);
  const shape = (m?.[1] ?? '').split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const start = bytes.byteOffset + 10 + headerLen;
  const data = new Float32Array(bytes.buffer.slice(start, start + shape.reduce((a, b) => a * b, 1) * 4));
  return { data, shape };
}
