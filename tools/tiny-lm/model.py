"""A small Llama-architecture decoder (RMSNorm, rotary position embeddings,
SwiGLU MLP, causal multi-head attention with an optional KV cache), written
against PyTorch 1.13 so that torch.onnx.export gives the Hugging Face / Optimum
"decoder with past" graph. Weights follow the HF LlamaForCausalLM layout and
rotate_half convention."""
import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F

NEG = -1e9  # masked score: finite, so a row with every key masked (a pad query) stays NaN-free


@dataclass
class Config:
    vocab_size: int = 4096
    hidden_size: int = 256
    intermediate_size: int = 576
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 4
    head_dim: int = 64
    max_position_embeddings: int = 512
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = True

    def to_dict(self):
        return asdict(self)


PRESETS = {
    # end-to-end pipeline check: seconds to train
    "smoke": Config(hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                    num_attention_heads=2, num_key_value_heads=2, head_dim=32),
    "full": Config(),
}


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Attention(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.h, self.kv, self.d = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        self.q_proj = nn.Linear(c.hidden_size, self.h * self.d, bias=False)
        self.k_proj = nn.Linear(c.hidden_size, self.kv * self.d, bias=False)
        self.v_proj = nn.Linear(c.hidden_size, self.kv * self.d, bias=False)
        self.o_proj = nn.Linear(self.h * self.d, c.hidden_size, bias=False)

    def forward(self, x, cos, sin, bias, past_k=None, past_v=None):
        b, s = x.shape[0], x.shape[1]
        q = self.q_proj(x).view(b, s, self.h, self.d).transpose(1, 2)
        k = self.k_proj(x).view(b, s, self.kv, self.d).transpose(1, 2)
        v = self.v_proj(x).view(b, s, self.kv, self.d).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        present = (k, v)
        if self.kv != self.h:
            k = k.repeat_interleave(self.h // self.kv, dim=1)
            v = v.repeat_interleave(self.h // self.kv, dim=1)
        att = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.d)) + bias
        att = torch.softmax(att, dim=-1)
        y = torch.matmul(att, v).transpose(1, 2).reshape(b, s, self.h * self.d)
        return self.o_proj(y), present


class MLP(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = MLP(c)

    def forward(self, x, cos, sin, bias, past_k=None, past_v=None):
        a, present = self.self_attn(self.input_layernorm(x), cos, sin, bias, past_k, past_v)
        x = x + a
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x, present


class LlamaLM(nn.Module):
    def __init__(self, c: Config):
        super().__init__()
        self.config = c
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList([Block(c) for _ in range(c.num_hidden_layers)])
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        if not c.tie_word_embeddings:
            self.lm_head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        inv_freq = 1.0 / (c.rope_theta ** (torch.arange(0, c.head_dim, 2).float() / c.head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.reset_parameters()

    def reset_parameters(self):
        std = 0.02
        for name, p in self.named_parameters():
            if p.dim() == 2:
                s = std / math.sqrt(2 * self.config.num_hidden_layers) if name.endswith(("o_proj.weight", "down_proj.weight")) else std
                nn.init.normal_(p, 0.0, s)

    def num_params(self):
        return sum(p.numel() for p in self.parameters())

    def rope(self, position_ids):
        freqs = position_ids.unsqueeze(-1).float() * self.inv_freq  # [b, s, d/2]
        emb = torch.cat((freqs, freqs), dim=-1).unsqueeze(1)          # [b, 1, s, d]
        return emb.cos(), emb.sin()

    def forward(self, input_ids, attention_mask=None, position_ids=None, past=None):
        """input_ids [b, s]; attention_mask [b, past+s] (1 = attend, 0 = padding) or None
        (no padding); position_ids [b, s] or None (past..past+s-1); past: list of (k, v)
        [b, kv, past, d] per layer, or None. Returns logits [b, s, vocab] and presents."""
        b, s = input_ids.shape[0], input_ids.shape[1]
        p = past[0][0].shape[2] if past is not None else 0
        t = p + s
        if position_ids is None:
            position_ids = (torch.arange(s, device=input_ids.device) + p).unsqueeze(0).expand(b, s)
        cos, sin = self.rope(position_ids)
        # causal (key j visible from query i at absolute position p+i iff j <= p+i) and padding
        q_pos = torch.arange(s, device=input_ids.device) + (t - s)
        k_pos = torch.arange(t, device=input_ids.device)
        allowed = (k_pos.unsqueeze(0) <= q_pos.unsqueeze(1)).unsqueeze(0).unsqueeze(0)  # [1,1,s,t]
        if attention_mask is not None:
            allowed = allowed & (attention_mask > 0).unsqueeze(1).unsqueeze(2)          # [b,1,s,t]
        bias = torch.zeros(allowed.shape, dtype=torch.float32).masked_fill(~allowed, NEG)
        x = self.embed_tokens(input_ids)
        presents = []
        for i, layer in enumerate(self.layers):
            pk, pv = past[i] if past is not None else (None, None)
            x, pr = layer(x, cos, sin, bias, pk, pv)
            presents.append(pr)
        x = self.norm(x)
        w = self.embed_tokens.weight if self.config.tie_word_embeddings else self.lm_head.weight
        return F.linear(x, w), presents
