// Reads the few parts of an ONNX file's graph that load checks need (node wiring, initializer
// shapes) straight from its protobuf encoding, without reading tensor data: weights are skipped
// by their length prefix, so a check costs a few small reads whatever the model's size.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export interface GraphNode {
  opType: string;
  inputs: string[];
  outputs: string[];
  /** Integer attributes (e.g. Gather's axis). */
  ints: Map<string, number>;
}

export interface GraphSummary {
  nodes: GraphNode[];
  inputs: string[];
  /** Shapes of the graph's constant tensors: initializers and Constant nodes' values. */
  constants: Map<string, number[]>;
}

/** Positional reads through a window, so skipped weights are never read. */
class FileBytes {
  private readonly fd: number;
  readonly size: number;
  private readonly window = Buffer.alloc(1 << 14);
  private windowStart = 0;
  private windowEnd = 0;

  constructor(file: string) {
    this.fd = openSync(file, 'r');
    this.size = fstatSync(this.fd).size;
  }

  private load(pos: number): void {
    if (pos >= this.size) throw new Error(`truncated protobuf at byte ${pos}`);
    this.windowStart = pos;
    this.windowEnd = pos + readSync(this.fd, this.window, 0, Math.min(this.window.length, this.size - pos), pos);
  }

  byte(pos: number): number {
    if (pos < this.windowStart || pos >= this.windowEnd) this.load(pos);
    return this.window[pos - this.windowStart];
  }

  text(pos: number, len: number): string {
    if (len <= this.window.length && (pos < this.windowStart || pos + len > this.windowEnd)) this.load(pos);
    if (pos >= this.windowStart && pos + len <= this.windowEnd) return this.window.toString('utf8', pos - this.windowStart, pos - this.windowStart + len);
    const out = Buffer.alloc(len);
    readSync(this.fd, out, 0, len, pos);
    return out.toString('utf8');
  }

  close(): void {
    closeSync(this.fd);
  }
}

interface Field {
  no: number;
  wire: number;
  /** Varint value (wire 0), or the start of the payload (wire 2). */
  value: number;
  len: number;
}

function* fields(b: FileBytes, start: number, end: number): Generator<Field> {
  let pos = start;
  const varint = (): number => {
    let result = 0;
    let mul = 1;
    for (;;) {
      const byte = b.byte(pos++);
      result += (byte & 0x7f) * mul;
      if (byte < 0x80) return result;
      mul *= 128;
    }
  };
  while (pos < end) {
    const key = varint();
    const no = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) {
      yield { no, wire, value: varint(), len: 0 };
    } else if (wire === 2) {
      const len = varint();
      yield { no, wire, value: pos, len };
      pos += len;
    } else if (wire === 1) {
      pos += 8;
    } else if (wire === 5) {
      pos += 4;
    } else {
      throw new Error(`unsupported protobuf wire type ${wire} at byte ${pos}`);
    }
    if (pos > end) throw new Error(`truncated protobuf at byte ${end}`);
  }
}

function packedVarints(b: FileBytes, start: number, len: number): number[] {
  const out: number[] = [];
  let pos = start;
  while (pos < start + len) {
    let result = 0;
    let mul = 1;
    for (;;) {
      const byte = b.byte(pos++);
      result += (byte & 0x7f) * mul;
      if (byte < 0x80) break;
      mul *= 128;
    }
    out.push(result);
  }
  return out;
}

// Field numbers from onnx.proto (ModelProto.graph = 7; GraphProto node = 1, initializer = 5,
// input = 11; NodeProto input = 1, output = 2, op_type = 4, attribute = 5; AttributeProto name = 1,
// i = 3, t = 5; TensorProto dims = 1, name = 8; ValueInfoProto name = 1).
function tensorDims(b: FileBytes, start: number, len: number): { name: string; dims: number[] } {
  let name = '';
  const dims: number[] = [];
  for (const f of fields(b, start, start + len)) {
    if (f.no === 1 && f.wire === 0) dims.push(f.value);
    else if (f.no === 1 && f.wire === 2) dims.push(...packedVarints(b, f.value, f.len));
    else if (f.no === 8 && f.wire === 2) name = b.text(f.value, f.len);
  }
  return { name, dims };
}

function node(b: FileBytes, start: number, len: number, constants: Map<string, number[]>): GraphNode {
  const n: GraphNode = { opType: '', inputs: [], outputs: [], ints: new Map() };
  let constantValue: number[] | undefined;
  for (const f of fields(b, start, start + len)) {
    if (f.wire !== 2) continue;
    if (f.no === 1) n.inputs.push(b.text(f.value, f.len));
    else if (f.no === 2) n.outputs.push(b.text(f.value, f.len));
    else if (f.no === 4) n.opType = b.text(f.value, f.len);
    else if (f.no === 5) {
      let attrName = '';
      for (const a of fields(b, f.value, f.value + f.len)) {
        if (a.no === 1 && a.wire === 2) attrName = b.text(a.value, a.len);
        else if (a.no === 3 && a.wire === 0) n.ints.set(attrName, a.value);
        else if (a.no === 5 && a.wire === 2) constantValue = tensorDims(b, a.value, a.len).dims;
      }
    }
  }
  if (n.opType === 'Constant' && constantValue && n.outputs[0]) constants.set(n.outputs[0], constantValue);
  return n;
}

/** The main graph of the ONNX file `file`: nodes, graph inputs and constant shapes. Throws on a file that is not protobuf. */
export function readGraphSummary(file: string): GraphSummary {
  const b = new FileBytes(file);
  try {
    const summary: GraphSummary = { nodes: [], inputs: [], constants: new Map() };
    for (const m of fields(b, 0, b.size)) {
      if (m.no !== 7 || m.wire !== 2) continue;
      for (const g of fields(b, m.value, m.value + m.len)) {
        if (g.wire !== 2) continue;
        if (g.no === 1) summary.nodes.push(node(b, g.value, g.len, summary.constants));
        else if (g.no === 5) {
          const t = tensorDims(b, g.value, g.len);
          summary.constants.set(t.name, t.dims);
        } else if (g.no === 11) {
          for (const v of fields(b, g.value, g.value + g.len)) if (v.no === 1 && v.wire === 2) summary.inputs.push(b.text(v.value, v.len));
        }
      }
    }
    return summary;
  } finally {
    b.close();
  }
}

/** Ops that carry position ids through to a table lookup unchanged in meaning. */
const INDEX_OPS = new Set(['Cast', 'Identity', 'Unsqueeze', 'Squeeze', 'Reshape', 'Flatten', 'Expand', 'Add', 'Sub', 'Clip', 'Min', 'Max']);
/** Ops between a constant table and the Gather that reads it (slicing, dequantizing, casting). */
const TABLE_OPS = new Set(['Cast', 'Identity', 'Slice', 'Squeeze', 'Unsqueeze', 'DequantizeLinear']);

export interface PositionTable {
  /** The constant tensor the positions index (initializer or Constant output). */
  tensor: string;
  /** Positions it holds. */
  positions: number;
}

/**
 * The position tables the graph looks position ids up in (a learned position embedding, or a rope
 * cos/sin cache baked in as a constant): every Gather whose indices come from the input
 * `positionInput` and whose data is a constant. Empty when positions are computed (rope from the
 * ids, as this project's export does): such a graph has no position limit of its own.
 */
export function positionTables(g: GraphSummary, positionInput = 'position_ids'): PositionTable[] {
  if (!g.inputs.includes(positionInput)) return [];
  const producer = new Map<string, GraphNode>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);
  const derived = new Set([positionInput]);
  const tables: PositionTable[] = [];
  // Nodes are topologically sorted in a valid ONNX graph, so one forward sweep suffices.
  for (const n of g.nodes) {
    if (n.opType === 'Gather' || n.opType === 'GatherElements') {
      if (!derived.has(n.inputs[1] ?? '')) continue;
      let data = n.inputs[0];
      let hops = 0;
      while (!g.constants.has(data) && producer.get(data) && TABLE_OPS.has(producer.get(data)!.opType) && hops++ < 8) {
        data = producer.get(data)!.inputs[0];
      }
      const dims = g.constants.get(data);
      if (!dims) continue;
      const axis = n.ints.get('axis') ?? 0;
      const significant = dims.length > 2 ? dims.slice(dims.findIndex((d) => d !== 1)) : dims;
      const positions = significant[axis < 0 ? significant.length + axis : axis];
      if (positions) tables.push({ tensor: data, positions });
    } else if (INDEX_OPS.has(n.opType) && n.inputs.some((i) => derived.has(i))) {
      for (const o of n.outputs) derived.add(o);
    }
  }
  return tables;
}
