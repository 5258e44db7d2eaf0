// Draft trees (DDTree, arXiv 2604.12989): one diffusion pass gives a distribution per block
// position; the likeliest continuations under a node budget form a tree that the verifier scores
// in one pass (tree_mask), and acceptance walks it (acceptance.ts walkTree). A chain is the tree
// with one child per node, so every draft goes through here.
import type { TreeShape } from './acceptance';

/** The drafter's likeliest tokens at one block position, most probable first. */
export interface PositionCandidates {
  tokens: number[];
  probs: number[];
}

/** Candidates by block position, computed when first asked for (an array is one). */
export interface PositionSource {
  readonly length: number;
  at(depth: number): PositionCandidates | undefined;
}

/**
 * A draft tree whose every prefix is a tree: nodes are ordered by `gains`, which never grow from
 * parent to child, so cutting it at any node count keeps each kept node's ancestors.
 */
export interface DraftTree extends TreeShape {
  readonly tokens: number[];
  readonly parents: number[];
  /** gains[i]: estimated chance node i is accepted (the product of its path's calibrated probabilities). */
  readonly gains: number[];
  /** confidence[i]: the drafter's own probability of node i's token at its position (for calibration). */
  readonly confidence: number[];
  /** rank[i]: 0 for the drafter's likeliest token at that position, 1 for the next, ...; -1: grafted from elsewhere. */
  readonly rank: number[];
  readonly probs?: (Float32Array | undefined)[];
}

/** The drafter's chain as a tree. confidence may be shorter than tokens (the rest: gain 0). */
export function chainTree(
  tokens: readonly number[],
  probs?: readonly (Float32Array | undefined)[],
  confidence: readonly number[] = [],
  calibrate: (c: number) => number = (c) => c,
): DraftTree {
  let survive = 1;
  const gains = tokens.map((_, i) => (survive *= i < confidence.length ? calibrate(confidence[i]) : 0));
  return {
    tokens: tokens.slice(),
    parents: tokens.map((_, i) => i - 1),
    gains,
    confidence: tokens.map((_, i) => confidence[i] ?? 0),
    rank: tokens.map(() => 0),
    probs: probs ? probs.slice(0, tokens.length) : undefined,
  };
}

interface Frontier {
  score: number; // estimated chance the path is accepted
  parent: number; // node index, -1 = the pending token
  parentScore: number;
  depth: number;
  nth: number; // which candidate of position `depth`, in decreasing chance
}

/**
 * Chance that the verifier's token at a position is each candidate: the calibrated probability
 * for the likeliest (the calibration is learned on those, see AcceptanceCalibration), the rest of
 * the mass shared among the others in proportion to the drafter's probabilities.
 */
function candidateChances(pos: PositionCandidates, calibrate: (c: number) => number): number[] {
  const top = Math.min(1, Math.max(0, calibrate(pos.probs[0])));
  const rest = Math.max(1e-9, 1 - pos.probs[0]);
  return pos.probs.map((p, r) => (r === 0 ? top : Math.min(1, ((1 - top) * p) / rest)));
}

/**
 * Best-first tree (DDTree): the `budget` paths most likely to be accepted, a path's chance being
 * the product of its tokens' chances at their positions (candidateChances). Children of any node
 * at depth d are position d + 1's candidates (one diffusion pass conditions every position on the
 * verified prefix only). Popping a node pushes its next sibling and its first child.
 */
export function buildTree(positions: PositionSource, budget: number, calibrate: (c: number) => number = (c) => c): DraftTree {
  const tree: DraftTree = { tokens: [], parents: [], gains: [], confidence: [], rank: [] };
  // per depth, asked for only when the tree reaches it: the chances, and the candidates by
  // decreasing chance (calibration may put the drafter's top token below others)
  const chances: number[][] = [];
  const orders: number[][] = [];
  const at = (depth: number): boolean => {
    if (chances[depth]) return true;
    const pos = depth < positions.length ? positions.at(depth) : undefined;
    if (!pos || pos.tokens.length === 0) return false;
    const c = candidateChances(pos, calibrate);
    chances[depth] = c;
    orders[depth] = c.map((_, r) => r).sort((a, b) => c[b] - c[a] || a - b);
    return true;
  };
  const heap: Frontier[] = [];
  const push = (parent: number, parentScore: number, depth: number, nth: number) => {
    if (!at(depth)) return;
    const c = chances[depth];
    if (nth >= c.length || !(c[orders[depth][nth]] > 0)) return;
    heapPush(heap, { score: parentScore * c[orders[depth][nth]], parent, parentScore, depth, nth });
  };
  push(-1, 1, 0, 0);
  while (tree.tokens.length < budget && heap.length > 0) {
    const f = heapPop(heap);
    const node = tree.tokens.length;
    const pos = positions.at(f.depth)!;
    const rank = orders[f.depth][f.nth];
    tree.tokens.push(pos.tokens[rank]);
    tree.parents.push(f.parent);
    tree.gains.push(f.score);
    tree.confidence.push(pos.probs[rank]);
    tree.rank.push(rank);
    push(f.parent, f.parentScore, f.depth, f.nth + 1);
    push(node, f.score, f.depth + 1, 0);
  }
  return sortByGain(tree);
}

/**
 * Grafts a continuation from elsewhere (prompt lookup) onto the tree as a branch from the pending
 * token: where the tree already has its tokens the nodes are shared (keeping the higher gain),
 * the rest are new nodes. gains[d]: the branch's own estimate for its token d.
 */
export function graftBranch(tree: DraftTree, branch: readonly number[], gains: readonly number[]): DraftTree {
  const t = { tokens: tree.tokens.slice(), parents: tree.parents.slice(), gains: tree.gains.slice(), confidence: tree.confidence.slice(), rank: tree.rank.slice(), probs: tree.probs?.slice() };
  let parent = -1;
  for (let d = 0; d < branch.length; d++) {
    let node = t.tokens.findIndex((tok, i) => tok === branch[d] && t.parents[i] === parent);
    const g = Math.min(gains[d], parent >= 0 ? t.gains[parent] : 1);
    if (node < 0) {
      node = t.tokens.length;
      t.tokens.push(branch[d]);
      t.parents.push(parent);
      t.gains.push(g);
      t.confidence.push(0);
      t.rank.push(-1);
      t.probs?.push(undefined);
    } else {
      t.gains[node] = Math.max(t.gains[node], g);
    }
    parent = node;
  }
  return sortByGain(t);
}

/** The first n nodes (a tree, since ancestors come first). */
export function truncateTree(tree: DraftTree, n: number): DraftTree {
  if (n >= tree.tokens.length) return tree;
  return {
    tokens: tree.tokens.slice(0, n),
    parents: tree.parents.slice(0, n),
    gains: tree.gains.slice(0, n),
    confidence: tree.confidence.slice(0, n),
    rank: tree.rank.slice(0, n),
    probs: tree.probs?.slice(0, n),
  };
}

/** Deepest node's depth + 1 (0 for an empty tree). */
export function treeDepth(tree: TreeShape): number {
  const depth: number[] = [];
  let max = 0;
  tree.parents.forEach((p, i) => {
    depth[i] = p < 0 ? 1 : depth[p] + 1;
    max = Math.max(max, depth[i]);
  });
  return max;
}

/**
 * Reorders nodes by decreasing gain (stable), keeping parents before children: a child's gain is
 * never above its parent's, and on ties the parent, which comes first, stays first.
 */
function sortByGain(tree: DraftTree): DraftTree {
  const order = tree.tokens.map((_, i) => i).sort((a, b) => tree.gains[b] - tree.gains[a] || a - b);
  const at = new Int32Array(order.length);
  order.forEach((old, i) => (at[old] = i));
  const sorted: DraftTree = {
    tokens: order.map((i) => tree.tokens[i]),
    parents: order.map((i) => (tree.parents[i] < 0 ? -1 : at[tree.parents[i]])),
    gains: order.map((i) => tree.gains[i]),
    confidence: order.map((i) => tree.confidence[i]),
    rank: order.map((i) => tree.rank[i]),
    probs: tree.probs ? order.map((i) => tree.probs![i]) : undefined,
  };
  sorted.parents.forEach((p, i) => {
    if (p >= i) throw new Error(`draft tree out of order: node ${i} has parent ${p}`);
  });
  return sorted;
}

/** The n highest entries of a row above `floor`, highest first (n small: insertion into a short list). */
export function topCandidates(row: ArrayLike<number>, n: number, floor = 0): PositionCandidates {
  const tokens: number[] = [];
  const values: number[] = [];
  for (let i = 0; i < row.length; i++) {
    const v = row[i];
    if (!(v > floor) || (values.length === n && v <= values[n - 1])) continue;
    let j = values.length < n ? values.length : n - 1;
    while (j > 0 && values[j - 1] < v) {
      values[j] = values[j - 1];
      tokens[j] = tokens[j - 1];
      j--;
    }
    values[j] = v;
    tokens[j] = i;
  }
  return { tokens, probs: values };
}

function heapPush(heap: Frontier[], f: Frontier): void {
  heap.push(f);
  let i = heap.length - 1;
  while (i > 0) {
    const up = (i - 1) >> 1;
    if (heap[up].score >= heap[i].score) break;
    [heap[up], heap[i]] = [heap[i], heap[up]];
    i = up;
  }
}

function heapPop(heap: Frontier[]): Frontier {
  const top = heap[0];
  const last = heap.pop()!;
  if (heap.length > 0) {
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && heap[l].score > heap[m].score) m = l;
      if (r < heap.length && heap[r].score > heap[m].score) m = r;
      if (m === i) break;
      [heap[m], heap[i]] = [heap[i], heap[m]];
      i = m;
    }
  }
  return top;
}
