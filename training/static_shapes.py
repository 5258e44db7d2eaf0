"""Cut the per-pass floor of a small ONNX decoder: replace shape arithmetic with constants.

A decoder exported from PyTorch computes every view/expand target at run time
(Shape -> Gather -> Unsqueeze -> Concat -> Reshape), a few hundred tiny kernels per pass. For a
small verifier or drafter those kernels, not the matrix products, are most of a pass. This pass
infers symbolic shapes (onnxruntime's SymbolicShapeInference) and gives each Reshape a constant
target (0 = keep that input dimension, -1 = the one dimension left to infer) and each Expand a
constant broadcast shape (1 = keep); Slice bounds that come out the same for two different
sequence lengths (e.g. rotate_half's `x[..., :d/2]`, computed from a static head size) become
constants too; then it drops the nodes nothing uses any more. The graph's inputs, outputs and
results are unchanged (checked: the same outputs at CHECK_SHAPES).

training/export.py runs it on every graph of every folder it writes, before quantization
(training/retrofit_int8.py on an older folder). By hand, on a folder's files:

    python -m training.static_shapes IN.onnx OUT.onnx [MASK_ID]
MASK_ID: for a DEER drafter, the mask token id, so the check runs it on a block of masks.
"""
import sys

import numpy as np
import onnx
from onnx import numpy_helper
from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference


def dims(vi):
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in vi.type.tensor_type.shape.dim]


# (sequence length, past length) the result is checked at: none of them is a probe of fold_slice_bounds
CHECK_SHAPES = ((1, 0), (1, 40), (5, 0), (3, 4), (17, 23))


def feeds(model: onnx.ModelProto, seq: int, past: int, mask_id=None):
    """Dummy inputs for the Optimum decoder layout or the DEER drafter layout. A drafter (no past
    inputs) gets max(past, 1) context positions and `seq` block positions: its input_ids are the
    context and then `seq` masks, its hidden_states one row per context position."""
    import onnxruntime  # noqa: F401  (only to fail early when it is missing)
    rng = np.random.default_rng(0)
    names = [i.name for i in model.graph.input]
    drafter = not any(n.startswith("past_key_values.") for n in names)
    f = {}
    for i in model.graph.input:
        d = dims(i)
        name = i.name
        if name == "input_ids" and drafter:
            ctx = max(past, 1)
            f[name] = rng.integers(7, 200, (1, ctx + seq)).astype(np.int64)
            if mask_id is not None:
                f[name][0, ctx:] = mask_id
        elif name == "input_ids":
            f[name] = np.full((1, seq), 5, np.int64)
        elif name == "attention_mask":
            f[name] = np.ones((1, past + seq), np.int64)
        elif name == "position_ids":
            f[name] = np.arange(past, past + seq, dtype=np.int64)[None]
        elif name == "tree_mask":
            f[name] = np.tril(np.ones((1, seq, seq), np.int64))  # a chain
        elif name.startswith("past_key_values."):
            f[name] = rng.standard_normal((1, d[1], past, d[3])).astype(np.float32)
        elif name == "hidden_states":
            f[name] = rng.standard_normal((1, max(past, 1), d[2])).astype(np.float32)
        elif name == "suffix_ids":
            f[name] = np.full((1, 2), 7, np.int64)
        else:
            raise SystemExit(f"do not know how to feed input {name}")
    return f


def fold_slice_bounds(model: onnx.ModelProto, mask_id=None) -> int:
    """Slice starts/ends/axes/steps computed at run time but equal for any sequence length -> constants."""
    import onnxruntime as ort

    consts = {i.name for i in model.graph.initializer} | {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    names = sorted({i for n in model.graph.node if n.op_type == "Slice" for i in n.input[1:] if i and i not in consts})
    if not names:
        return 0
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for nm in names:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(nm, onnx.TensorProto.INT64, None))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(probe.SerializeToString(), so, providers=["CPUExecutionProvider"])
    a = s.run(names, feeds(model, 3, 4, mask_id))
    b = s.run(names, feeds(model, 6, 9, mask_id))
    folded = {nm: x for nm, x, y in zip(names, a, b) if x.shape == y.shape and np.array_equal(x, y)}
    for n in model.graph.node:
        if n.op_type == "Slice":
            for j in range(1, len(n.input)):
                if n.input[j] in folded:
                    n.input[j] = n.input[j] + "__static"
    model.graph.initializer.extend(numpy_helper.from_array(v, k + "__static") for k, v in folded.items())
    return len(folded)


def rewrite(model: onnx.ModelProto, mask_id=None):
    inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    g = inferred.graph
    shape = {vi.name: dims(vi) for vi in list(g.value_info) + list(g.input) + list(g.output)}
    consts = {i.name for i in model.graph.initializer} | {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    new_inits, changed = [], 0
    for n in model.graph.node:
        if n.op_type not in ("Reshape", "Expand") or len(n.input) < 2 or n.input[1] in consts:
            continue
        src, out = shape.get(n.input[0]), shape.get(n.output[0])
        if not src or not out or any(d is None for d in out):
            continue
        target = []
        if n.op_type == "Reshape":
            free = 0
            for i, d in enumerate(out):
                if isinstance(d, int) and d > 0:
                    target.append(d)
                elif i < len(src) and src[i] == d:
                    target.append(0)
                else:
                    target.append(-1)
                    free += 1
            allowzero = next((a.i for a in n.attribute if a.name == "allowzero"), 0)
            if free > 1 or allowzero:  # with allowzero=1 a 0 means an empty dimension
                continue
        else:  # Expand: numpy broadcasting, 1 keeps the input's dimension
            if len(out) != len(src):
                continue
            ok = True
            for s, d in zip(src, out):
                if s == d:
                    target.append(1)
                elif isinstance(d, int) and s == 1:
                    target.append(d)
                else:
                    ok = False
            if not ok:
                continue
        name = f"{n.output[0]}__static_shape"
        new_inits.append(numpy_helper.from_array(np.array(target, np.int64), name))
        n.input[1] = name
        changed += 1
    model.graph.initializer.extend(new_inits)
    changed += fold_slice_bounds(model, mask_id)
    return changed, drop_unused(model.graph)


def drop_unused(g) -> int:
    """Removes the nodes and initializers of graph g that no graph output depends on (an
    initializer that is itself an output, like a drafter's head_ids, stays). Returns the number
    of nodes removed."""
    outputs = {o.name for o in g.output}
    needed, keep = set(outputs), []
    for n in reversed(g.node):
        if any(o in needed for o in n.output):
            keep.append(n)
            needed.update(i for i in n.input if i)
    removed = len(g.node) - len(keep)
    del g.node[:]
    g.node.extend(reversed(keep))
    used = {i for n in g.node for i in n.input} | outputs
    inits = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(inits)
    return removed


def check(before: onnx.ModelProto, after: onnx.ModelProto, mask_id=None) -> float:
    """Largest output difference between the two graphs over CHECK_SHAPES."""
    import onnxruntime as ort

    sessions = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]) for m in (before, after)]
    worst = 0.0
    for seq, past in CHECK_SHAPES:
        f = feeds(before, seq, past, mask_id)
        x, y = (s.run(None, f) for s in sessions)
        worst = max([worst] + [float(np.max(np.abs(p - q))) if p.size else 0.0 for p, q in zip(x, y)])
    return worst


def make_static(path_in, path_out, mask_id=None, tolerance=1e-4):
    """Rewrites path_in into path_out (may be the same file) when its outputs stay within tolerance
    at CHECK_SHAPES; raises ValueError, writing nothing, when they do not. Returns a report."""
    m = onnx.load(path_in)
    original = onnx.ModelProto()
    original.CopyFrom(m)
    nodes = len(m.graph.node)
    changed, removed = rewrite(m, mask_id)
    diff = check(original, m, mask_id)
    if diff > tolerance:
        raise ValueError(f"{path_in}: static shapes changed the outputs by {diff}; not written")
    onnx.save(m, path_out)
    return {"nodes_before": nodes, "nodes_after": len(m.graph.node), "constant_targets": changed,
            "removed": removed, "max_abs_diff": diff}


if __name__ == "__main__":
    r = make_static(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else None)
    print(f"max output difference {r['max_abs_diff']:.2e}")
    print(f"{r['constant_targets']} shape targets made constant, {r['removed']} nodes removed "
          f"({r['nodes_before']} -> {r['nodes_after']}) -> {sys.argv[2]}")
