"""
The two networks of deer-complete, in plain PyTorch.

- GPT: a Llama-style decoder (RMSNorm, RoPE, SwiGLU, grouped-query attention,
  tied embeddings). Used for the verifier and for the small `ar` draft model.
  `forward` is the training path (causal SDPA); `forward_cached` is the
  inference / ONNX path with an explicit KV cache in the Optimum layout.
- Drafter: the DEER masked-diffusion drafter. A small bidirectional transformer
  over [context tokens, k mask tokens] that predicts all k masked tokens in one
  pass, optionally conditioned on the verifier's hidden states of the context.

Shapes: B batch, T sequence, C n_embd, nh heads, nkv kv heads, hs head size.
"""
import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class GPTConfig:
    vocab_size: int = 16384
    n_layer: int = 6
    n_head: int = 8
    n_kv_head: int = 4        # grouped-query attention: n_head % n_kv_head == 0
    n_embd: int = 256
    ffn_hidden: int = 704     # SwiGLU inner size (~8/3 * n_embd, rounded to 64)
    max_seq_len: int = 512
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5

    @property
    def head_dim(self):
        return self.n_embd // self.n_head


@dataclass
class DrafterConfig:
    vocab_size: int = 16384
    n_layer: int = 2
    n_head: int = 8
    n_embd: int = 256
    ffn_hidden: int = 704
    block_size: int = 16      # k: masked positions filled in one pass
    context_window: int = 64  # c: at most this many verified tokens are seen
    hidden_size: int = 0      # > 0: conditioned on verifier hidden states of this size
    mask_id: int = 4          # id of <|mask|>
    suffix_window: int = 0    # > 0: also sees the first this many tokens after the cursor (FIM drafting)
    head_tokens: int = 0      # > 0: logits only for this many tokens (head_ids), the rest never drafted
    kv_context: bool = False  # the context enters each layer as keys and values only (DFlash-style)
    anchor: bool = False      # with kv_context: the last context token (the pending bonus token) runs through the
                              # layers with the block, so the masks read it from a residual stream, not only as K/V
    hidden_layers: tuple = () # the verifier blocks whose outputs make the hidden states (GPT.features); () = the final state
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5

    @property
    def n_kv_head(self):
        return self.n_head

    @property
    def head_dim(self):
        return self.n_embd // self.n_head


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return rms_normalized(x, self.eps) * self.weight


def rms_normalized(x, eps):
    """RMSNorm without a weight."""
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).type_as(x)


def rope_cos_sin(position_ids, head_dim, theta):
    """position_ids (B, T) int64 -> cos, sin (B, 1, T, hs/2)"""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32,
                                             device=position_ids.device) / head_dim))
    freqs = position_ids.float()[:, :, None] * inv_freq[None, None, :]  # (B, T, hs/2)
    return freqs.cos()[:, None], freqs.sin()[:, None]


def apply_rope(x, cos, sin):
    """x (B, h, T, hs): rotate the two halves of each head (Llama / HF convention)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Attention(nn.Module):
    def __init__(self, n_embd, n_head, n_kv_head):
        super().__init__()
        self.n_head, self.n_kv_head = n_head, n_kv_head
        self.hs = n_embd // n_head
        self.q_proj = nn.Linear(n_embd, n_head * self.hs, bias=False)
        self.k_proj = nn.Linear(n_embd, n_kv_head * self.hs, bias=False)
        self.v_proj = nn.Linear(n_embd, n_kv_head * self.hs, bias=False)
        self.o_proj = nn.Linear(n_head * self.hs, n_embd, bias=False)
        # explicit path only: normalise the softmax through the value product (set by
        # export.export_verifier for an int8-compute verifier, which needs it to stay exact)
        self.value_normalised = False

    def forward(self, x, cos, sin, causal=True, past=None, mask=None):
        """
        x (B, T, C). Training: past=None, mask=None -> SDPA (causal or bidirectional).
        Inference/export: past=(k, v) each (B, nkv, P, hs) and mask (B, 1, 1, T, P+T) bool;
        returns (y, (k, v)) with the new cache of length P+T.
        """
        B, T, C = x.shape
        q = self.q_proj(x).view(B, T, self.n_head, self.hs).transpose(1, 2)     # (B, nh, T, hs)
        k = self.k_proj(x).view(B, T, self.n_kv_head, self.hs).transpose(1, 2)  # (B, nkv, T, hs)
        v = self.v_proj(x).view(B, T, self.n_kv_head, self.hs).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if past is None and mask is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                               enable_gqa=self.n_head != self.n_kv_head)
            return self.o_proj(y.transpose(1, 2).reshape(B, T, C)), None
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, nkv, P+T, hs)
            v = torch.cat([past[1], v], dim=2)
        # explicit attention, grouped so K/V are never repeated: q -> (B, nkv, rep, T, hs)
        rep = self.n_head // self.n_kv_head
        qg = q.reshape(B, self.n_kv_head, rep, T, self.hs)
        att = qg @ k.unsqueeze(2).transpose(-1, -2) * (1.0 / math.sqrt(self.hs))  # (B, nkv, rep, T, P+T)
        att = att.masked_fill(~mask, float("-inf"))
        if not self.value_normalised:
            y = (att.softmax(dim=-1) @ v.unsqueeze(2)).reshape(B, self.n_head, T, self.hs)  # (B, nh, T, hs)
            return self.o_proj(y.transpose(1, 2).reshape(B, T, C)), (k, v)
        # softmax normalised by the same product as the values: the sum of the weights is a column
        # of ones appended to v. A draft tree's masked siblings then only add exact zeros to each
        # sum in the product's fixed order over keys, so a node's output is bit for bit that of a
        # chain pass over its path (a vectorised softmax sum regroups its terms when masked keys
        # sit between visible ones: ~6e-6, enough to flip an int8 activation's rounding).
        weights = torch.exp(att - att.amax(-1, keepdim=True))
        v1 = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)                  # (B, nkv, P+T, hs + 1)
        yz = weights @ v1.unsqueeze(2)                                             # (B, nkv, rep, T, hs + 1)
        y = (yz[..., :self.hs] / yz[..., self.hs:]).reshape(B, self.n_head, T, self.hs)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, C)), (k, v)


class MLP(nn.Module):
    def __init__(self, n_embd, hidden):
        super().__init__()
        self.gate_proj = nn.Linear(n_embd, hidden, bias=False)
        self.up_proj = nn.Linear(n_embd, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, n_embd, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.self_attn = Attention(cfg.n_embd, cfg.n_head, cfg.n_kv_head)
        self.post_attention_layernorm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.mlp = MLP(cfg.n_embd, cfg.ffn_hidden)

    def forward(self, x, cos, sin, causal=True, past=None, mask=None):
        a, present = self.self_attn(self.input_layernorm(x), cos, sin, causal, past, mask)
        x = x + a
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x, present


def _init_weights(module, n_layer):
    if isinstance(module, nn.Linear):
        std = 0.02
        if getattr(module, "_residual_out", False):
            std = 0.02 / math.sqrt(2 * n_layer)
        nn.init.normal_(module.weight, mean=0.0, std=std)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.layers = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.norm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        for blk in self.layers:
            blk.self_attn.o_proj._residual_out = True
            blk.mlp.down_proj._residual_out = True
        self.apply(lambda m: _init_weights(m, cfg.n_layer))

    def lm_head(self, h):
        return h @ self.embed_tokens.weight.t()  # tied embeddings

    def num_params(self):
        return sum(p.numel() for p in self.parameters())

    def features(self, outputs, final, taps=()):
        """The hidden states a drafter is conditioned on, from `outputs`, the residual stream after
        each block, and `final`, the final normed state (what the LM head reads). No taps: `final`.
        Taps (block numbers 1..n_layer; EAGLE-3 and DFlash read low, middle and top layers): each
        tapped block's output RMS-normalised, the top one as `final`, concatenated (..., len(taps) * C)."""
        if not taps:
            return final
        return torch.cat([final if i == self.cfg.n_layer
                          else rms_normalized(outputs[i - 1], self.cfg.norm_eps) for i in taps], -1)

    def forward(self, idx, targets=None, loss_mask=None, return_hidden=False, taps=()):
        """idx (B, T) -> logits (B, T, V); with targets, also the mean cross-entropy; with
        return_hidden, also the features (taps) of every position."""
        B, T = idx.shape
        pos = torch.arange(T, device=idx.device)[None].expand(B, T)
        cos, sin = rope_cos_sin(pos, self.cfg.head_dim, self.cfg.rope_theta)
        x = self.embed_tokens(idx)
        outputs = []
        for blk in self.layers:
            x, _ = blk(x, cos, sin, causal=True)
            outputs.append(x)
        h = self.norm(x)                                         # (B, T, C)
        logits = self.lm_head(h)                                 # (B, T, V)
        loss = None
        if targets is not None:
            ce = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1),
                                 reduction="none", ignore_index=-1)
            if loss_mask is None:
                loss_mask = (targets.reshape(-1) != -1).float()
            else:
                loss_mask = loss_mask.reshape(-1).float()
            loss = (ce * loss_mask).sum() / loss_mask.sum().clamp(min=1)
        if return_hidden:
            return logits, loss, self.features(outputs, h, taps)
        return logits, loss

    def forward_cached(self, input_ids, attention_mask, position_ids, past, tree_mask=None, taps=()):
        """
        Inference with a KV cache (the ONNX graph).
        input_ids, position_ids (B, q); attention_mask (B, P+q); past: list of (k, v),
        each (B, nkv, P, hs). Returns logits (B, q, V), presents, hidden (B, q, C; with taps the
        features, (B, q, len(taps) * C)).
        tree_mask (B, q, q), optional: new token j is visible to new token i iff
        tree_mask[:, i, j] != 0 (a draft tree: j is i or one of its ancestors; position_ids are
        then P + depth). The past is visible to every new token wherever attention_mask is 1.
        """
        cos, sin = rope_cos_sin(position_ids, self.cfg.head_dim, self.cfg.rope_theta)
        if tree_mask is None:
            # causal mask over past + new from the inputs alone (exports with dynamic shapes):
            # key j is visible to query i iff key_pos[j] <= position_ids[i] and it is not padding
            key_pos = attention_mask.cumsum(-1) - 1                                 # (B, P+q)
            mask = (key_pos[:, None, :] <= position_ids[:, :, None]) & (attention_mask[:, None, :] > 0)
        else:
            q = input_ids.shape[1]
            P = attention_mask.shape[1] - q
            seen = attention_mask[:, None, :] > 0                                   # (B, 1, P+q)
            new = torch.cat([torch.ones_like(tree_mask[:, :, :1]).expand(-1, -1, P), tree_mask], dim=-1)
            mask = seen & (new > 0)                                                 # (B, q, P+q)
        mask = mask[:, None, None]                                                  # (B, 1, 1, q, P+q)
        x = self.embed_tokens(input_ids)
        presents, outputs = [], []
        for blk, kv in zip(self.layers, past):
            x, present = blk(x, cos, sin, past=kv, mask=mask)
            presents.append(present)
            outputs.append(x)
        h = self.norm(x)
        return self.lm_head(h), presents, self.features(outputs, h, taps)

    @torch.no_grad()
    def generate_greedy(self, idx, max_new_tokens, eos_id=None):
        """Greedy continuation of a batch of equal-length prompts idx (B, T) with a KV cache.
        Returns (B, max_new_tokens); positions after EOS are filled with EOS."""
        B, T = idx.shape
        past = [(torch.zeros(B, self.cfg.n_kv_head, 0, self.cfg.head_dim, device=idx.device),) * 2
                for _ in range(self.cfg.n_layer)]
        am = torch.ones(B, T, dtype=torch.long, device=idx.device)
        pos = torch.arange(T, device=idx.device)[None].expand(B, T)
        logits, past, _ = self.forward_cached(idx, am, pos, past)
        out = []
        done = torch.zeros(B, dtype=torch.bool, device=idx.device)
        nxt = logits[:, -1].argmax(-1)
        for t in range(max_new_tokens):
            if eos_id is not None:
                nxt = torch.where(done, torch.full_like(nxt, eos_id), nxt)
                done |= nxt == eos_id
            out.append(nxt)
            if t == max_new_tokens - 1:
                break
            am = torch.ones(B, T + t + 1, dtype=torch.long, device=idx.device)
            pos = torch.full((B, 1), T + t, dtype=torch.long, device=idx.device)
            logits, past, _ = self.forward_cached(nxt[:, None], am, pos, past)
            nxt = logits[:, -1].argmax(-1)
        return torch.stack(out, dim=1)


class Drafter(nn.Module):
    """
    DEER drafter: input_ids (B, c + k) = c verified tokens then k <|mask|> tokens;
    bidirectional attention; logits for the k masked positions (B, k, V).
    With hidden conditioning, hidden (B, c, H) from the verifier is projected and added
    to the context embeddings (the engine passes a zero row for the last, unverified token).
    With a suffix window, suffix_ids (B, s) (the first tokens after the cursor, <|endoftext|>
    where the document ends) follow the block, marked by a learned embedding, and the block
    attends to them as to the context (FIM drafting); only the first suffix_window are used.
    With head_tokens, the LM head scores only the tokens in head_ids (the ones the verifier writes
    most; set from the distillation data) and every other token gets -1e9: a quarter of the vocabulary
    covers nearly all drafts at a quarter of the head's cost (the verifier still decides every token).
    With kv_context, the context positions are not run through the layers: each layer's keys and values
    for them come from its own norm and K/V projections of embedding + projected hidden state, and only
    the block (and suffix) positions are queries, attention and MLP. With anchor too, the last context
    position (the bonus token, whose hidden row is zero) is a query position as well (DFlash's block starts
    with that token): the next token depends most on it, and as K/V alone it is only an uncontextualised
    embedding. The pass's inputs and outputs stay the same.
    """

    def __init__(self, cfg: DrafterConfig):
        super().__init__()
        assert cfg.kv_context or not cfg.anchor, "anchor: a query position before the block exists only with kv_context"
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.layers = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.norm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        if cfg.hidden_size > 0:
            self.hidden_norm = RMSNorm(cfg.hidden_size, cfg.norm_eps)
            self.hidden_proj = nn.Linear(cfg.hidden_size, cfg.n_embd, bias=False)
        if cfg.suffix_window > 0:
            self.suffix_embed = nn.Parameter(torch.zeros(cfg.n_embd))
        if cfg.head_tokens > 0:
            self.register_buffer("head_ids", torch.arange(cfg.head_tokens))
        for blk in self.layers:
            blk.self_attn.o_proj._residual_out = True
            blk.mlp.down_proj._residual_out = True
        self.apply(lambda m: _init_weights(m, cfg.n_layer))

    def num_params(self):
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def init_from_verifier(self, verifier: GPT, copy_layers=True):
        """Start from the verifier: its token embedding (so its tied LM head) and final norm, and,
        with copy_layers, its first n_layer blocks (K/V heads expanded from GQA to one per head)."""
        assert verifier.cfg.n_embd == self.cfg.n_embd
        self.embed_tokens.weight.copy_(verifier.embed_tokens.weight)
        self.norm.weight.copy_(verifier.norm.weight)
        if not copy_layers or verifier.cfg.n_head != self.cfg.n_head:
            return
        rep = verifier.cfg.n_head // verifier.cfg.n_kv_head
        hs = verifier.cfg.head_dim
        for dst, src in zip(self.layers, verifier.layers):
            sd = {k: v.clone() for k, v in src.state_dict().items()}
            for name in ("self_attn.k_proj.weight", "self_attn.v_proj.weight"):
                w = sd[name].view(verifier.cfg.n_kv_head, hs, -1)            # (nkv, hs, C)
                sd[name] = w.repeat_interleave(rep, dim=0).reshape(-1, w.shape[-1])  # (nh*hs, C)
            dst.load_state_dict(sd)

    def forward(self, input_ids, hidden=None, k=None, suffix_ids=None, full=True):
        B, L = input_ids.shape
        k = self.cfg.block_size if k is None else k
        return self.block_logits(input_ids, hidden, L - k, k, suffix_ids, full)

    @staticmethod
    def _kv_context_layer(blk, ctx, x, cos, sin, c):
        """One layer with the context (B, c, C) as keys/values only; x (B, T, C) the query positions
        (block, then suffix), at positions c.. of cos/sin. Context and queries share one norm and
        one K and one V projection (RMSNorm is per position), which keeps the exported pass short."""
        a = blk.self_attn
        B, T, C = x.shape
        h = blk.input_layernorm(torch.cat([ctx, x], 1))                           # (B, c+T, C)

        def heads(t, proj):
            return proj(t).view(B, t.shape[1], a.n_head, a.hs).transpose(1, 2)
        q = apply_rope(heads(h[:, c:], a.q_proj), cos[..., c:, :], sin[..., c:, :])
        k = apply_rope(heads(h, a.k_proj), cos, sin)
        v = heads(h, a.v_proj)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=False)
        x = x + a.o_proj(y.transpose(1, 2).reshape(B, T, C))
        return x + blk.mlp(blk.post_attention_layernorm(x))

    def head_targets(self, tgt):
        """Token ids as indices into the reduced head (-1: outside it, or an ignored target, -1 already)."""
        lut = torch.full((self.cfg.vocab_size,), -1, dtype=torch.long, device=tgt.device)
        lut[self.head_ids] = torch.arange(self.cfg.head_tokens, device=tgt.device)
        return torch.where(tgt >= 0, lut[tgt.clamp(min=0)], -1)

    def block_logits(self, input_ids, hidden, c, k, suffix_ids=None, full=True):
        """Logits (B, k, V) of the k positions after the first c of input_ids (B, c + k); with
        head_tokens and full=False, only the head's (B, k, head_tokens)."""
        x = self.embed_tokens(input_ids)                              # (B, c+k, C)
        if self.cfg.hidden_size > 0:
            hproj = self.hidden_proj(self.hidden_norm(hidden))        # (B, c, C)
            x = torch.cat([x[:, :c] + hproj, x[:, c:]], dim=1)
        if self.cfg.suffix_window > 0:
            x = torch.cat([x, self.embed_tokens(suffix_ids[:, :self.cfg.suffix_window]) + self.suffix_embed], dim=1)
        pos = torch.arange(x.shape[1], device=input_ids.device)[None]
        cos, sin = rope_cos_sin(pos, self.cfg.head_dim, self.cfg.rope_theta)
        if self.cfg.kv_context:
            a = 1 if self.cfg.anchor else 0                          # query positions before the block
            ctx, x = x[:, :c - a], x[:, c - a:]
            for blk in self.layers:
                x = self._kv_context_layer(blk, ctx, x, cos, sin, c - a)
            h = self.norm(x[:, a:a + k])
        else:
            for blk in self.layers:
                x, _ = blk(x, cos, sin, causal=False)
            h = self.norm(x[:, c:c + k])                               # (B, k, C)
        if self.cfg.head_tokens <= 0:
            return h @ self.embed_tokens.weight.t()                    # (B, k, V)
        sub = h @ self.embed_tokens.weight[self.head_ids].t()          # (B, k, N)
        if not full:
            return sub
        out = torch.full((sub.shape[0], sub.shape[1], self.cfg.vocab_size), -1e9, dtype=sub.dtype, device=sub.device)
        return out.scatter(-1, self.head_ids.expand(sub.shape[0], sub.shape[1], -1), sub)


def config_dict(cfg):
    return asdict(cfg)
