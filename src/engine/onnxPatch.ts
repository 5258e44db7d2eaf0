// Makes a dynamically quantized verifier exact for speculative decoding, at load time.
// First choice (dequantizeMatMulInteger): back to float MatMuls on the dequantized weights. For
// quantized MatMuls it does not recognize (makeRowwiseQuantized):
//
// onnxruntime's quantize_dynamic inserts DynamicQuantizeLinear before each MatMulInteger: one
// activation scale for the whole [1, q, hidden] input, so a position's logits depend on the other
// tokens in the same pass and drafted output can differ from plain decoding. This rewrites each
// DynamicQuantizeLinear into symmetric per-row quantization (scale = max|x| / 127 over the last
// axis, stored as uint8 around a fixed zero point of 128, so MatMulInteger keeps its fast u8s8
// kernels): every row is quantized on its own. Same transformation as bench/tools/rowwise_int8.py,
// done on the protobuf bytes (a few wire-format fields are all it needs).

type Bytes = Uint8Array;

interface Field {
  num: number;
  wire: number;
  /** The whole field, tag included (for copying it through unchanged). */
  raw: Bytes;
  /** Length-delimited payload (wire type 2). */
  data?: Bytes;
  /** Varint value (wire type 0). */
  value?: bigint;
}

function readVarint(buf: Bytes, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const b = buf[pos++];
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [result, pos];
    shift += 7n;
  }
}

function parse(buf: Bytes): Field[] {
  const out: Field[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const start = pos;
    const [tag, p1] = readVarint(buf, pos);
    pos = p1;
    const num = Number(tag >> 3n);
    const wire = Number(tag & 7n);
    const f: Field = { num, wire, raw: buf };
    if (wire === 0) {
      [f.value, pos] = readVarint(buf, pos);
    } else if (wire === 1) {
      pos += 8;
    } else if (wire === 5) {
      pos += 4;
    } else if (wire === 2) {
      const [len, p2] = readVarint(buf, pos);
      f.data = buf.subarray(p2, p2 + Number(len));
      pos = p2 + Number(len);
    } else {
      throw new Error(`unsupported wire type ${wire}`);
    }
    if (pos > buf.length) throw new Error('truncated field');
    f.raw = buf.subarray(start, pos);
    out.push(f);
  }
  return out;
}

function varint(v: bigint | number): number[] {
  let x = BigInt.asUintN(64, BigInt(v));
  const out: number[] = [];
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x > 0n) b |= 0x80;
    out.push(b);
  } while (x > 0n);
  return out;
}

function concat(parts: (Bytes | number[])[]): Bytes {
  const n = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const utf8 = new TextEncoder();
const text = new TextDecoder();
const lenField = (num: number, data: Bytes) => concat([varint((num << 3) | 2), varint(data.length), data]);
const strField = (num: number, s: string) => lenField(num, utf8.encode(s));
const intField = (num: number, v: number | bigint) => concat([varint(num << 3), varint(v)]);

const FLOAT = 1;
const UINT8 = 2;
const INT64 = 7;

function tensor(name: string, type: number, dims: number[], raw: Bytes): Bytes {
  return concat([...dims.map((d) => intField(1, d)), intField(2, type), strField(8, name), lenField(9, raw)]);
}

function attrInt(name: string, v: number): Bytes {
  return concat([strField(1, name), intField(3, v), intField(20, 2)]);
}

function attrInts(name: string, vs: number[]): Bytes {
  return concat([strField(1, name), ...vs.map((v) => intField(8, v)), intField(20, 7)]);
}

function attrTensor(name: string, t: Bytes): Bytes {
  return concat([strField(1, name), lenField(5, t), intField(20, 4)]);
}

function node(op: string, inputs: string[], outputs: string[], attrs: Bytes[] = []): Bytes {
  return concat([...inputs.map((i) => strField(1, i)), ...outputs.map((o) => strField(2, o)), strField(4, op), ...attrs.map((a) => lenField(5, a))]);
}

const f32 = (v: number) => new Uint8Array(new Float32Array([v]).buffer);

interface NodeInfo {
  op: string;
  domain: string;
  inputs: string[];
  outputs: string[];
}

function nodeInfo(data: Bytes): NodeInfo {
  const info: NodeInfo = { op: '', domain: '', inputs: [], outputs: [] };
  for (const f of parse(data)) {
    if (!f.data) continue;
    if (f.num === 1) info.inputs.push(text.decode(f.data));
    else if (f.num === 2) info.outputs.push(text.decode(f.data));
    else if (f.num === 4) info.op = text.decode(f.data);
    else if (f.num === 7) info.domain = text.decode(f.data);
  }
  return info;
}

/** Replacement nodes for one DynamicQuantizeLinear (x -> x_q, x_scale, x_zero_point). */
function rowwise(n: NodeInfo, opset: number): Bytes[] {
  const [x] = n.inputs;
  const [xq, xs, xzp] = n.outputs;
  const p = `${xq}__rowq`;
  const reduce =
    opset >= 18
      ? node('ReduceMax', [`${p}_abs`, 'rowq__axes'], [`${p}_amax`], [attrInt('keepdims', 1)])
      : node('ReduceMax', [`${p}_abs`], [`${p}_amax`], [attrInts('axes', [-1]), attrInt('keepdims', 1)]);
  return [
    node('Abs', [x], [`${p}_abs`]),
    reduce,
    node('Div', [`${p}_amax`, 'rowq__127'], [`${p}_s0`]),
    node('Max', [`${p}_s0`, 'rowq__eps'], [xs]),
    node('Div', [x, xs], [`${p}_d`]),
    node('Round', [`${p}_d`], [`${p}_r`]),
    node('Add', [`${p}_r`, 'rowq__128'], [`${p}_u`]),
    node('Clip', [`${p}_u`, 'rowq__1', 'rowq__255'], [`${p}_c`]),
    node('Cast', [`${p}_c`], [xq], [attrInt('to', UINT8)]),
    node('Constant', [], [xzp], [attrTensor('value', tensor('', UINT8, [], new Uint8Array([128])))]),
  ];
}

/**
 * Returns the model with every DynamicQuantizeLinear made per-row, and how many were rewritten
 * (0: the bytes are returned unchanged).
 */
export function makeRowwiseQuantized(model: Bytes): { bytes: Bytes; rewritten: number } {
  const top = parse(model);
  let opset = 0;
  for (const f of top) {
    if (f.num !== 8 || !f.data) continue;
    let domain = '';
    let version = 0;
    for (const g of parse(f.data)) {
      if (g.num === 1 && g.data) domain = text.decode(g.data);
      if (g.num === 2 && g.value !== undefined) version = Number(g.value);
    }
    if (domain === '' || domain === 'ai.onnx') opset = Math.max(opset, version);
  }
  const graphIndex = top.findIndex((f) => f.num === 7 && f.data);
  if (graphIndex < 0) return { bytes: model, rewritten: 0 };
  const graphParts: Bytes[] = [];
  let rewritten = 0;
  for (const f of parse(top[graphIndex].data!)) {
    if (f.num === 1 && f.data) {
      const info = nodeInfo(f.data);
      if (info.op === 'DynamicQuantizeLinear' && (info.domain === '' || info.domain === 'ai.onnx') && info.outputs.length === 3) {
        for (const n of rowwise(info, opset)) graphParts.push(lenField(1, n));
        rewritten++;
        continue;
      }
    }
    graphParts.push(f.raw);
  }
  if (rewritten === 0) return { bytes: model, rewritten: 0 };
  const inits = [
    tensor('rowq__127', FLOAT, [], f32(127)),
    tensor('rowq__128', FLOAT, [], f32(128)),
    tensor('rowq__1', FLOAT, [], f32(1)),
    tensor('rowq__255', FLOAT, [], f32(255)),
    tensor('rowq__eps', FLOAT, [], f32(1e-12)),
    tensor('rowq__axes', INT64, [1], new Uint8Array(new BigInt64Array([-1n]).buffer)),
  ];
  for (const t of inits) graphParts.push(lenField(5, t));
  const graph = concat(graphParts);
  const parts: Bytes[] = top.map((f, i) => (i === graphIndex ? lenField(7, graph) : f.raw));
  return { bytes: concat(parts), rewritten };
}

interface Init {
  dims: number[];
  type: number;
  raw?: Bytes;
  /** float_data / int32_data, when the tensor does not use raw_data. */
  list?: number[];
}

function parseTensor(data: Bytes): Init & { name: string } {
  const t: Init & { name: string } = { dims: [], type: 0, name: '' };
  for (const f of parse(data)) {
    if (f.num === 1 && f.value !== undefined) t.dims.push(Number(f.value));
    else if (f.num === 1 && f.data) {
      let p = 0;
      while (p < f.data.length) {
        const [v, q] = readVarint(f.data, p);
        t.dims.push(Number(v));
        p = q;
      }
    } else if (f.num === 2 && f.value !== undefined) t.type = Number(f.value);
    else if (f.num === 8 && f.data) t.name = text.decode(f.data);
    else if (f.num === 9 && f.data) t.raw = f.data;
    else if (f.num === 4) {
      // float_data: packed (wire 2) or one fixed32 per field (wire 5)
      t.list ??= [];
      if (f.data) {
        const b = f.data.slice();
        t.list.push(...new Float32Array(b.buffer, 0, b.length / 4));
      } else {
        const b = f.raw.slice(f.raw.length - 4);
        t.list.push(new Float32Array(b.buffer)[0]);
      }
    } else if (f.num === 5) {
      // int32_data (also int8/uint8 values): packed or one varint per field
      t.list ??= [];
      if (f.data) {
        let p = 0;
        while (p < f.data.length) {
          const [v, q] = readVarint(f.data, p);
          t.list.push(Number(BigInt.asIntN(32, v)));
          p = q;
        }
      } else if (f.value !== undefined) t.list.push(Number(BigInt.asIntN(32, f.value)));
    }
  }
  return t;
}

function values(t: Init): Float64Array | null {
  if (!t.raw) return t.list ? Float64Array.from(t.list) : null;
  const n = t.dims.reduce((a, b) => a * b, 1);
  const b = t.raw.slice(); // aligned copy
  if (t.type === FLOAT) return Float64Array.from(new Float32Array(b.buffer, 0, n));
  if (t.type === 3) return Float64Array.from(new Int8Array(b.buffer, 0, n)); // INT8
  if (t.type === UINT8) return Float64Array.from(new Uint8Array(b.buffer, 0, n));
  return null;
}

/**
 * Turns each quantize_dynamic MatMul (DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul by
 * x_scale * w_scale) back into a float MatMul on the dequantized weights, so no activation is
 * quantized: a position's logits then depend on the pass's other tokens only through float
 * rounding (~1e-6), as in an fp32 export. Returns the model unchanged when there is nothing to do.
 */
export function dequantizeMatMulInteger(model: Bytes): { bytes: Bytes; rewritten: number } {
  const top = parse(model);
  const graphIndex = top.findIndex((f) => f.num === 7 && f.data);
  if (graphIndex < 0) return { bytes: model, rewritten: 0 };
  const gfields = parse(top[graphIndex].data!);
  const nodes: { field: number; info: NodeInfo }[] = [];
  const inits = new Map<string, Init>();
  gfields.forEach((f, i) => {
    if (f.num === 1 && f.data) nodes.push({ field: i, info: nodeInfo(f.data) });
    else if (f.num === 5 && f.data) {
      const t = parseTensor(f.data);
      inits.set(t.name, t);
    }
  });
  const producer = new Map<string, number>();
  const consumers = new Map<string, number[]>();
  nodes.forEach((n, i) => {
    for (const o of n.info.outputs) producer.set(o, i);
    for (const x of n.info.inputs) consumers.set(x, [...(consumers.get(x) ?? []), i]);
  });
  const replace = new Map<number, Bytes>(); // field index -> replacement node (or empty: drop)
  const drop = new Set<number>();
  const newInits: Bytes[] = [];
  let rewritten = 0;
  nodes.forEach((m, mi) => {
    if (m.info.op !== 'MatMulInteger' || m.info.inputs.length < 3) return;
    const [xq, wqName, , wzpName] = m.info.inputs;
    const di = producer.get(xq);
    const dql = di !== undefined ? nodes[di] : undefined;
    if (!dql || dql.info.op !== 'DynamicQuantizeLinear') return;
    const [x] = dql.info.inputs;
    const xs = dql.info.outputs[1];
    const ci = (consumers.get(m.info.outputs[0]) ?? [])[0];
    const cast = ci !== undefined ? nodes[ci] : undefined;
    if (!cast || cast.info.op !== 'Cast' || (consumers.get(m.info.outputs[0]) ?? []).length !== 1) return;
    const yi = (consumers.get(cast.info.outputs[0]) ?? [])[0];
    const mul = yi !== undefined ? nodes[yi] : undefined;
    if (!mul || mul.info.op !== 'Mul') return;
    const sName = mul.info.inputs.find((v) => v !== cast.info.outputs[0]);
    const si = sName !== undefined ? producer.get(sName) : undefined;
    const sMul = si !== undefined ? nodes[si] : undefined;
    if (!sMul || sMul.info.op !== 'Mul' || !sMul.info.inputs.includes(xs)) return;
    const wsName = sMul.info.inputs.find((v) => v !== xs)!;
    const wq = inits.get(wqName);
    const ws = inits.get(wsName);
    const wz = wzpName ? inits.get(wzpName) : undefined;
    if (!wq || !ws || wq.dims.length !== 2) return;
    const q = values(wq);
    const s = values(ws);
    const z = wz ? values(wz) : new Float64Array(1);
    if (!q || !s || !z) return;
    const [k, n] = wq.dims;
    const w = new Float32Array(k * n);
    for (let r = 0; r < k; r++) {
      for (let c = 0; c < n; c++) w[r * n + c] = (q[r * n + c] - z[z.length === 1 ? 0 : c]) * s[s.length === 1 ? 0 : c];
    }
    const wName = `${wqName}__dequantized`;
    newInits.push(tensor(wName, FLOAT, [k, n], new Uint8Array(w.buffer)));
    replace.set(m.field, node('MatMul', [x, wName], [mul.info.outputs[0]]));
    for (const d of [ci, yi, si]) drop.add(nodes[d!].field);
    rewritten++;
  });
  if (rewritten === 0) return { bytes: model, rewritten: 0 };
  // a DynamicQuantizeLinear (and its scale Muls) with no consumer left goes too
  const removedFields = new Set([...drop, ...replace.keys()]);
  nodes.forEach((n) => {
    if (n.info.op !== 'DynamicQuantizeLinear') return;
    const users = n.info.outputs.flatMap((o) => consumers.get(o) ?? []).filter((u) => !removedFields.has(nodes[u].field));
    if (users.length === 0) drop.add(n.field);
  });
  const parts: Bytes[] = [];
  gfields.forEach((f, i) => {
    const r = replace.get(i);
    if (r) parts.push(lenField(1, r));
    else if (!drop.has(i)) parts.push(f.raw);
  });
  for (const t of newInits) parts.push(lenField(5, t));
  const graph = concat(parts);
  return { bytes: concat(top.map((f, i) => (i === graphIndex ? lenField(7, graph) : f.raw))), rewritten };
}
