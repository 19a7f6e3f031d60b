"""Tiny random configurations of the benchmarked transformers models (no weights are downloaded).

Each spec names the config and model classes, the config keyword arguments, the inputs the
forward call takes and the output field the target returns. Sizes follow the transformers test
suites' tiny configs: a few layers, hidden sizes of 16-32, a vocabulary of 99.
"""

from __future__ import annotations

from dataclasses import dataclass

VOCAB = 99


@dataclass(frozen=True)
class ModelSpec:
    name: str  # the folder under transformers/models/
    config_class: str
    model_class: str
    config: dict
    inputs: str  # "lm": input_ids; "seq2seq": + decoder_input_ids; "whisper": input_features + decoder_input_ids
    seq_len: int = 16
    output: str = "logits"
    family: str = ""  # the break family the issue files this model under
    batch: int = 2
    # Pass an all-ones attention_mask. Only where the model needs it under dynamo: transformers
    # builds the default mask only when `not is_torchdynamo_compiling()`, so these models crash
    # (not break) when compiled without one.
    attention_mask: bool = False


_T5 = dict(
    vocab_size=VOCAB,
    d_model=32,
    d_kv=8,
    d_ff=37,
    num_layers=2,
    num_decoder_layers=2,
    num_heads=4,
    relative_attention_num_buckets=8,
    decoder_start_token_id=0,
    pad_token_id=0,
    eos_token_id=1,
)
_DECODER = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)
# Grouped-matmul expert kernels (transformers 5) need 16-byte aligned strides: intermediate 32, not 37.
_MOE = dict(_DECODER, intermediate_size=32, num_experts_per_tok=2)

SPECS: tuple[ModelSpec, ...] = (
    ModelSpec("t5", "T5Config", "T5ForConditionalGeneration", _T5, "seq2seq", family="warning_once"),
    ModelSpec("mt5", "MT5Config", "MT5ForConditionalGeneration", _T5, "seq2seq", family="warning_once"),
    ModelSpec("umt5", "UMT5Config", "UMT5ForConditionalGeneration", _T5, "seq2seq", family="warning_once"),
    ModelSpec(
        "longt5",
        "LongT5Config",
        "LongT5ForConditionalGeneration",
        dict(_T5, encoder_attention_type="transient-global", local_radius=4, global_block_size=4),
        "seq2seq",
        family="warning_once",
        attention_mask=True,
    ),
    ModelSpec(
        "whisper",
        "WhisperConfig",
        "WhisperForConditionalGeneration",
        dict(
            vocab_size=VOCAB,
            d_model=16,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=16,
            decoder_ffn_dim=16,
            num_mel_bins=80,
            max_source_positions=30,
            max_target_positions=40,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            decoder_start_token_id=3,
            suppress_tokens=None,
            begin_suppress_tokens=None,
        ),
        "whisper",
        family="warning_once",
    ),
    ModelSpec(
        "rwkv",
        "RwkvConfig",
        "RwkvForCausalLM",
        dict(
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=2,
            attention_hidden_size=32,
            intermediate_size=37,
            context_length=64,
        ),
        "lm",
        family="warning_once",
    ),
    ModelSpec(
        "longformer",
        "LongformerConfig",
        "LongformerModel",
        dict(
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            attention_window=4,
            max_position_embeddings=64,
            pad_token_id=1,
        ),
        "lm",
        output="last_hidden_state",
        family="global_attn_item",
    ),
    ModelSpec(
        "led",
        "LEDConfig",
        "LEDForConditionalGeneration",
        dict(
            vocab_size=VOCAB,
            d_model=16,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=16,
            decoder_ffn_dim=16,
            attention_window=4,
            max_encoder_position_embeddings=64,
            max_decoder_position_embeddings=64,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
            decoder_start_token_id=2,
        ),
        "seq2seq",
        family="global_attn_item",
    ),
    ModelSpec(
        "reformer",
        "ReformerConfig",
        "ReformerModelWithLMHead",
        dict(
            vocab_size=VOCAB,
            hidden_size=32,
            num_attention_heads=2,
            attention_head_size=16,
            attn_layers=["local", "lsh"],
            feed_forward_size=37,
            is_decoder=True,
            axial_pos_embds=True,
            axial_pos_shape=[4, 8],
            axial_pos_embds_dim=[16, 16],
            max_position_embeddings=32,
            local_attn_chunk_length=8,
            lsh_attn_chunk_length=8,
            num_buckets=4,
            num_hashes=1,
            pad_token_id=0,
            eos_token_id=2,
        ),
        "lm",
        seq_len=32,
        family="data_dependent_shape",
    ),
    ModelSpec(
        "gemma2",
        "Gemma2Config",
        "Gemma2ForCausalLM",
        dict(_DECODER, head_dim=8, sliding_window=8),
        "lm",
        family="data_dependent_shape",
    ),
    ModelSpec(
        "mixtral", "MixtralConfig", "MixtralForCausalLM", dict(_MOE, num_local_experts=4), "lm", family="moe_routing"
    ),
    ModelSpec(
        "qwen2_moe",
        "Qwen2MoeConfig",
        "Qwen2MoeForCausalLM",
        dict(_MOE, num_experts=4, moe_intermediate_size=16, shared_expert_intermediate_size=32, decoder_sparse_step=1),
        "lm",
        family="moe_routing",
    ),
    ModelSpec("olmoe", "OlmoeConfig", "OlmoeForCausalLM", dict(_MOE, num_experts=4), "lm", family="moe_routing"),
    ModelSpec(
        "dbrx",
        "DbrxConfig",
        "DbrxForCausalLM",
        dict(
            vocab_size=VOCAB,
            d_model=32,
            n_heads=4,
            n_layers=2,
            max_seq_len=64,
            pad_token_id=0,
            attn_config={"kv_n_heads": 2, "clip_qkv": 8, "rope_theta": 10000.0},
            ffn_config={"ffn_hidden_size": 32, "moe_num_experts": 4, "moe_top_k": 2},
        ),
        "lm",
        family="moe_routing",
    ),
    ModelSpec(
        "switch_transformers",
        "SwitchTransformersConfig",
        "SwitchTransformersForConditionalGeneration",
        dict(_T5, num_experts=4, expert_capacity=8, num_sparse_encoder_layers=1, num_sparse_decoder_layers=1),
        "seq2seq",
        family="moe_routing",
        attention_mask=True,
    ),
    ModelSpec(
        "big_bird",
        "BigBirdConfig",
        "BigBirdModel",
        dict(
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=37,
            attention_type="block_sparse",
            block_size=4,
            num_random_blocks=2,
            max_position_embeddings=128,
            pad_token_id=0,
        ),
        "lm",
        seq_len=64,
        output="last_hidden_state",
        family="numpy_planning",
    ),
    ModelSpec(
        "funnel",
        "FunnelConfig",
        "FunnelModel",
        dict(vocab_size=VOCAB, block_sizes=[1, 1], num_decoder_layers=1, d_model=32, n_head=4, d_head=8, d_inner=37),
        "lm",
        output="last_hidden_state",
        family="item_sizes",
    ),
    ModelSpec(
        "ctrl",
        "CTRLConfig",
        "CTRLLMHeadModel",
        dict(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, dff=37, n_positions=64, pad_token_id=0),
        "lm",
        family="module_attr_assign",
    ),
)

BY_NAME = {spec.name: spec for spec in SPECS}
