#!/usr/bin/python3
"""Real exporter output for rmsfuse's tests: small Llama-, Gemma- and T5-style decoders written
the way Hugging Face writes their RMSNorms, exported with torch.onnx.export (opset 17).

Run with Debian's torch (apt-get install -y python3-torch python3-onnx):
    /usr/bin/python3 examples/exporters/export.py

Writes examples/exporters/{llama,gemma,t5,llama-fp16}.onnx and expected.json (what rmsfuse
should fuse in each, derived from the module structure below). Weights are seeded, H = 64.

Site structure shared by all models (N layers):
    layer 0 input norm         <- reads the embeddings (graph input or a Mul): plain norm
    every later norm           <- reads `residual + f(x)`, and that sum is reused as the next
                                  residual: PreNorm
    final norm                 <- reads the last residual sum, used by nothing else: PostNorm
so N layers give 1 Norm + (2N - 1) PreNorm + 1 PostNorm.
"""
import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

H = 64
FFN = 128
OUT = os.path.dirname(os.path.abspath(__file__))


class LlamaRMSNorm(nn.Module):
    """transformers' LlamaRMSNorm: statistics in fp32, gamma multiply in the input dtype."""

    def __init__(self, hidden, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(1 + 0.1 * torch.randn(hidden))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


class GemmaRMSNorm(nn.Module):
    """transformers' GemmaRMSNorm: weight stored as an offset from 1, everything in fp32."""

    def __init__(self, hidden, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(0.1 * torch.randn(hidden))

    def _norm(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    def forward(self, x):
        output = self._norm(x.float())
        output = output * (1.0 + self.weight.float())
        return output.type_as(x)


class T5LayerNorm(nn.Module):
    """transformers' T5LayerNorm: no mean subtraction, no bias, weight multiply after the cast."""

    def __init__(self, hidden, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(1 + 0.1 * torch.randn(hidden))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        variance = hidden_states.to(torch.float32).pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        if self.weight.dtype in [torch.float16, torch.bfloat16]:
            hidden_states = hidden_states.to(self.weight.dtype)
        return self.weight * hidden_states


class MatMulF16(torch.autograd.Function):
    """x @ w that also runs for fp16 on the CPU (torch 1.13 has no fp16 CPU matmul): computed
    in fp32 and rounded to fp16 when traced, exported as one ONNX MatMul in fp16."""

    @staticmethod
    def forward(ctx, x, w):
        return torch.matmul(x.float(), w.float()).to(x.dtype)

    @staticmethod
    def symbolic(g, x, w):
        return g.op("MatMul", x, w)


class Linear(nn.Module):
    """A bias-free projection exported as MatMul with a [in, out] weight (as HF exports show)."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_in, n_out) / math.sqrt(n_in))

    def forward(self, x):
        if x.dtype == torch.float16:
            return MatMulF16.apply(x, self.weight)
        return torch.matmul(x, self.weight)


class Attention(nn.Module):
    """Single-head self-attention without a mask: enough ops between the norms to be realistic."""

    def __init__(self):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (Linear(H, H) for _ in range(4))

    def forward(self, x):
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        scores = torch.matmul(q.float(), k.float().transpose(1, 2)) / math.sqrt(H)
        # HF: softmax in fp32, back to the activation dtype.
        probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(x.dtype)
        ctx = torch.matmul(probs.float(), v.float()).to(x.dtype)
        return self.o_proj(ctx)


class GatedMLP(nn.Module):
    def __init__(self, act):
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = Linear(H, FFN), Linear(H, FFN), Linear(FFN, H)
        self.act = act

    def forward(self, x):
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class ReluMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.wi, self.wo = Linear(H, FFN), Linear(FFN, H)

    def forward(self, x):
        return self.wo(F.relu(self.wi(x)))


def silu(x):
    # In fp32 so the fp16 model traces on the CPU; exports as Cast, Sigmoid, Mul, Cast.
    return F.silu(x.float()).to(x.dtype)


class DecoderLayer(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then + mlp(norm(.))."""

    def __init__(self, norm, mlp):
        super().__init__()
        self.input_layernorm = norm(H)
        self.self_attn = Attention()
        self.post_attention_layernorm = norm(H)
        self.mlp = mlp()

    def forward(self, hidden_states):
        residual = hidden_states
        hidden_states = self.self_attn(self.input_layernorm(hidden_states))
        hidden_states = residual + hidden_states
        residual = hidden_states
        hidden_states = self.mlp(self.post_attention_layernorm(hidden_states))
        return residual + hidden_states


class Decoder(nn.Module):
    def __init__(self, norm, mlp, layers, embed_scale=None):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(norm, mlp) for _ in range(layers))
        self.norm = norm(H)
        self.embed_scale = embed_scale

    def forward(self, inputs_embeds):
        h = inputs_embeds
        if self.embed_scale is not None:
            # Gemma scales the embeddings by sqrt(H) (the normalizer) before layer 0.
            h = h * torch.tensor(self.embed_scale, dtype=h.dtype)
        for layer in self.layers:
            h = layer(h)
        return self.norm(h)


MODELS = {
    # name: (module factory, layers, dtype, constant folding, model_type, precision_mode)
    "llama": (lambda: Decoder(LlamaRMSNorm, lambda: GatedMLP(silu), 2), 2, torch.float32, True, "llama", "high_precision"),
    "gemma": (
        lambda: Decoder(GemmaRMSNorm, lambda: GatedMLP(lambda x: F.gelu(x, approximate="tanh")), 2, embed_scale=math.sqrt(H)),
        2, torch.float32, False, "gemma", "high_precision",
    ),
    "t5": (lambda: Decoder(T5LayerNorm, ReluMLP, 3), 3, torch.float32, True, "llama", "high_precision"),
    # HF fp16 Llama: the gamma multiply happens in fp16 after the cast back: high_performance.
    "llama-fp16": (lambda: Decoder(LlamaRMSNorm, lambda: GatedMLP(silu), 2), 2, torch.float16, True, "llama", "high_performance"),
}


def main():
    expected = {}
    for name, (factory, layers, dtype, folding, model_type, precision) in MODELS.items():
        torch.manual_seed(0)
        model = factory().to(dtype).eval()
        x = torch.randn(2, 5, H).to(dtype)
        path = os.path.join(OUT, f"{name}.onnx")
        with torch.no_grad():
            torch.onnx.export(
                model, (x,), path,
                input_names=["inputs_embeds"], output_names=["last_hidden_state"],
                dynamic_axes={"inputs_embeds": {0: "batch", 1: "seq"}, "last_hidden_state": {0: "batch", 1: "seq"}},
                opset_version=17, do_constant_folding=folding,
            )
        expected[name] = {
            "layers": layers,
            "dtype": "float16" if dtype == torch.float16 else "float32",
            "fused": {"RmsNorm": 1, "PreNorm": 2 * layers - 1, "PostNorm": 1},
            "model_type": model_type,
            "precision_mode": precision if dtype == torch.float16 else "high_precision",
        }
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
